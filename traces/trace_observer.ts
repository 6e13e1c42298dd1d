import { SpanStatusCode, type Attributes, type Link } from '@opentelemetry/api';
import type { Attrs, LockMode, ObservedLock, Process, Sim, SimObserver } from '../sim/index.ts';
import { toAttributeValue, toAttributes } from './attributes.ts';
import type { VirtualClock } from './hrtime.ts';
import type { TraceLevel } from './options.ts';
import { SpanBudget } from './span_budget.ts';
import { EVENTS_PER_SPAN_MAX, type SpanFactory } from './span_factory.ts';
import { Fate, SpanRecord, sampleHash, type RecordKind } from './span_record.ts';
import type { SimSpan } from './sim_span.ts';
import { statusName } from './status_names.ts';

/** Detail ranks: a span is kept when its rank is at most the trace level's. */
const RANK: Record<TraceLevel, number> = { run: 0, phase: 1, op: 2, lock: 3 };

/** The service of the root span and of threads spawned without one. */
export const ROOT_SERVICE = 'cvmsim';

/** The service of a lane whose CPU no traced thread is pinned to (a host CPU). */
export const HOST_SERVICE = 'kvm';

const PRIORITY_NAMES = ['normal', 'background', 'idle'];
/** Process.priority of the idle class: its thread is the lane's idle time, not a span of its own. */
const PRIORITY_IDLE = 2;

/** Lock waits shorter than this are counted on their op, not drawn: Jaeger shows them as 0 us. */
export const SHORT_WAIT_NS = 1000;

/** Ended ops remembered for a later op's link to them (links to older ops are dropped). */
const ENDED_OPS_REMEMBERED = 4096;

/** One entry of an actor's stack: its lifetime, an operation, or a lock wait. */
interface Frame {
  readonly kind: 'actor' | 'op' | 'lock';
  readonly actor: Actor;
  readonly opId: number;
  /** This frame's own record, or null when the level filtered it. */
  readonly rec: SpanRecord | null;
  /** The nearest record at or below this frame: where children and events go. */
  readonly owner: SpanRecord;
  readonly lock: ObservedLock | null;
  /** An ended op put back on the stack: it ends again with the op nested in it (an exit in its TDCALL). */
  readonly reopened: boolean;
}

/** A contended acquisition in progress: lockWait seen, lockAcquire not yet. */
interface Wait {
  readonly lock: ObservedLock;
  readonly mode: LockMode;
  readonly holders: string[];
}

/** A thread of the simulation (or the engine itself, for callbacks outside any process). */
interface Actor {
  readonly name: string;
  readonly service: string;
  readonly stack: Frame[];
  /** Its lifetime's record (the lane's for an idle thread, the root's for the engine). */
  readonly record: SpanRecord;
  wait: Wait | null;
  /** The op this actor ended last, held back one step in case its exit nests in it. */
  lastEnded: SpanRecord | null;
}

export interface TraceObserverOptions {
  level: TraceLevel;
  maxSpans: number;
  rootName: string;
  rootAttributes: Attributes;
}

/**
 * The engine's observer turned into spans in virtual time. While the run goes, every span is a
 * cheap SpanRecord; the SpanBudget decides which ops are kept, spread over the whole run; when
 * the run ends, the kept records become OpenTelemetry spans (spans()).
 *
 * The tree a user expands in Jaeger: the run (root) > one lane per CPU (`vm1/vcpu3`: the threads
 * pinned to it, and runs that a scheduler reports with cpuRun, such as the vCPUs a host CPU ran)
 * > one span per thread (an idle-class thread is the lane's idle time: no span of its own) >
 * its ops, nested as they nest in the thread (an op's `actor` argument, such as the TDX module
 * inside a SEAMCALL, gives the span that service). Threads on no CPU hang from the root.
 *
 * Contention sits on the op that met it: a BUSY answer is an event with the lock, mode, holder
 * and waiter (merged with the model's status event of the same instant); at level `lock` a wait
 * of 1 us or more is a span, and shorter waits are counted on the op (`lock.short_waits`,
 * `lock.short_wait_ns`), as they are at level `op`, where longer waits are events. An op caused
 * by an op of another actor links to it (FOLLOWS_FROM); an op that starts the instant its cause
 * in the same actor ended (a TDCALL's EPT-violation exit) nests in it instead. Nothing here
 * reads wall time.
 */
export class TraceObserver implements SimObserver {
  readonly root: SpanRecord;
  /** The root span, made at once so that the trace id is known while the run goes. */
  private readonly rootSpan: SimSpan;
  readonly traceId: string;
  private readonly rank: number;
  private readonly budget: SpanBudget;
  private readonly salt: number;
  private readonly actors = new Map<Process<any>, Actor>();
  private readonly lanes = new Map<string, SpanRecord>();
  private readonly engine: Actor;
  private readonly openOps = new Map<number, Frame>();
  /** The last ENDED_OPS_REMEMBERED ended ops, by id modulo the size. */
  private readonly endedOps: (SpanRecord | undefined)[] = new Array(ENDED_OPS_REMEMBERED);
  /** Records kept whatever the budget (structure, errors), in begin order. */
  private readonly kept: SpanRecord[] = [];
  private nextSeq = 1;
  private openWaits = 0;
  droppedEvents = 0;
  /** Ops seen (kept or cut), and the fraction of the run's hundredths with ops that keep one. */
  opsSeen = 0;
  coverage = 1;

  constructor(
    private readonly sim: Sim,
    private readonly factory: SpanFactory,
    private readonly clock: VirtualClock,
    options: TraceObserverOptions,
  ) {
    this.rank = RANK[options.level];
    this.budget = new SpanBudget(options.maxSpans);
    this.rootSpan = factory.start(ROOT_SERVICE, options.rootName, null, clock.toHrTime(0), options.rootAttributes);
    this.traceId = this.rootSpan.spanContext().traceId;
    this.salt = Number.parseInt(this.traceId.slice(0, 8), 16) >>> 0;
    this.root = new SpanRecord(0, 'root', ROOT_SERVICE, options.rootName, null, null, 0, undefined, 0);
    this.keepStructure(this.root);
    this.engine = this.newActor('engine', ROOT_SERVICE, this.root);
    for (const p of sim.processes()) this.actorOf(p);
  }

  get droppedSpans(): number {
    return this.budget.cutSpans;
  }

  // ---- Processes -------------------------------------------------------------------------

  processStart(p: Process<any>): void {
    this.startActor(p, false);
  }

  processEnd(p: Process<any>): void {
    const actor = this.actors.get(p);
    if (actor === undefined) return;
    this.settle(actor, 'exited');
    this.unwind(actor, { 'cvmsim.open_at_exit': true });
    this.actors.delete(p);
    const lifetime = actor.stack.pop()!;
    if (lifetime.rec !== null) this.closeStructure(lifetime.rec, { 'cvmsim.cpu_time_ns': p.cpuTimeNs });
    else this.foldIdleThread(actor, p);
  }

  // ---- Operations ------------------------------------------------------------------------

  opBegin(p: Process<any> | null, name: string, attrs: Attrs | undefined, link: number, actorName: string | undefined): number {
    const actor = this.actorOf(p);
    const cause = actor.lastEnded;
    if (cause !== null && link === cause.seq && cause.endNs === this.sim.now) {
      // The exit a TDCALL caused, at the instant it ended: the exit nests in it.
      actor.lastEnded = null;
      this.reopen(actor, cause);
      link = 0;
    }
    this.settle(actor, 'interrupted');
    const parent = actor.stack[actor.stack.length - 1]!;
    const phase = attrs !== undefined && attrs['cvmsim.level'] === 'phase';
    let rec: SpanRecord | null = null;
    const seq = this.nextSeq++;
    if ((phase ? RANK.phase : RANK.op) <= this.rank) {
      rec = this.record(seq, phase ? 'phase' : 'op', actorName ?? actor.service, name, parent.owner, actor, this.sim.now, attrs);
      if (link !== 0) rec.link = this.causeOf(link, rec);
      if (phase) this.keepStructure(rec);
    }
    const frame: Frame = { kind: 'op', actor, opId: seq, rec, owner: rec ?? parent.owner, lock: null, reopened: false };
    actor.stack.push(frame);
    this.openOps.set(seq, frame);
    return seq;
  }

  opEnd(id: number, attrs: Attrs | undefined): void {
    const frame = this.openOps.get(id);
    if (frame === undefined) return;
    this.openOps.delete(id);
    const actor = frame.actor;
    this.settle(actor, 'interrupted');
    const stack = actor.stack;
    if (stack[stack.length - 1] === frame) {
      stack.pop();
    } else {
      // Ops normally end innermost first; one that ends out of order leaves the others open.
      const at = stack.lastIndexOf(frame);
      if (at >= 0) stack.splice(at, 1);
    }
    const rec = frame.rec;
    if (rec !== null) {
      rec.endNs = this.sim.now;
      if (attrs !== undefined) rec.endAttrs = attrs;
      if (rec.kind === 'phase') this.closeStructure(rec);
      else actor.lastEnded = rec;
      this.rememberEnded(rec);
    }
    // A re-opened cause ends with its exit.
    const top = stack[stack.length - 1]!;
    if (top.reopened) {
      stack.pop();
      const cause = top.rec!;
      cause.endNs = this.sim.now;
      this.finishOp(actor, cause);
    }
  }

  opSpan(p: Process<any> | null, name: string, attrs: Attrs | undefined, link: number, actorName: string | undefined, startNs: number, endNs: number): void {
    const actor = this.actorOf(p);
    this.settle(actor, 'interrupted');
    if (RANK.op > this.rank) return;
    const parent = actor.stack[actor.stack.length - 1]!;
    const rec = this.record(this.nextSeq++, 'op', actorName ?? actor.service, name, parent.owner, actor, startNs, attrs);
    if (link !== 0) rec.link = this.causeOf(link, rec);
    rec.endNs = endNs;
    this.finishOp(actor, rec);
  }

  instant(p: Process<any> | null, name: string, attrs: Attrs | undefined): void {
    const actor = this.actorOf(p);
    this.settle(actor, 'interrupted');
    const owner = this.top(actor).owner;
    // The model's own event for a BUSY answer the lock reported this instant: one event.
    const events = owner.events;
    const last = events === null ? undefined : events[events.length - 1];
    if (last !== undefined && last.name === 'lock_busy' && last.atNs === this.sim.now && attrs !== undefined && attrs['status.name'] !== undefined) {
      events![events!.length - 1] = { name, atNs: last.atNs, attrs: { ...attrs, ...last.attrs } };
      return;
    }
    this.addEvent(owner, name, attrs ?? {});
  }

  /** A stretch `runner` held `cpu` (a host CPU, or a vCPU): a span on the CPU's lane. */
  cpuRun(cpu: string, runner: string, startNs: number, endNs: number): void {
    if (RANK.op > this.rank) return;
    const lane = this.laneFor(cpu, HOST_SERVICE, startNs);
    const rec = this.record(this.nextSeq++, 'op', lane.service, runner, lane, lane, startNs, { 'cvmsim.runner': runner, 'cvmsim.cpu': cpu });
    rec.endNs = endNs;
    this.offer(rec);
  }

  // ---- Locks -----------------------------------------------------------------------------

  lockWait(p: Process<any>, lock: ObservedLock, mode: LockMode, holders: string[]): void {
    const actor = this.actorOf(p);
    this.settle(actor, 'interrupted');
    actor.wait = { lock, mode, holders };
    this.openWaits++;
    if (RANK.lock > this.rank) return;
    const parent = this.top(actor);
    const rec = this.record(this.nextSeq++, 'wait', actor.service, `wait ${lock.name}`, parent.owner, actor, this.sim.now, lockAttrs(lock, mode, holders, actor.name));
    actor.stack.push({ kind: 'lock', actor, opId: 0, rec, owner: rec, lock, reopened: false });
  }

  lockAcquire(p: Process<any>, lock: ObservedLock, mode: LockMode, waitedNs: number): void {
    if (this.openWaits === 0) return; // uncontended: the common case costs one comparison
    const actor = this.actors.get(p);
    const wait = actor?.wait;
    if (actor === undefined || wait === null || wait === undefined || wait.lock !== lock) return;
    actor.wait = null;
    this.openWaits--;
    const top = this.top(actor);
    if (top.kind === 'lock' && top.lock === lock) actor.stack.pop();
    const owner = this.top(actor).owner;
    if (waitedNs < SHORT_WAIT_NS) {
      owner.shortWaits++;
      owner.shortWaitNs += waitedNs;
      return;
    }
    owner.contended = true;
    if (top.kind === 'lock' && top.lock === lock) {
      const rec = top.rec!;
      rec.endNs = this.sim.now;
      rec.endAttrs = { 'lock.wait_ns': waitedNs, 'lock.outcome': 'acquired' };
      rec.contended = true;
      this.finishOp(actor, rec);
    } else if (RANK.op <= this.rank && this.eventRoom(owner)) {
      this.addEvent(owner, 'lock_contended', { ...lockAttrs(lock, mode, wait.holders, actor.name), 'lock.wait_ns': waitedNs });
    }
  }

  lockRelease(): void {}

  waitCancelled(p: Process<any>): void {
    const actor = this.actors.get(p);
    if (actor !== undefined) this.settleWait(actor, 'interrupted');
  }

  lockBusy(p: Process<any> | null, lock: ObservedLock, mode: LockMode, answer: string): void {
    const actor = this.actorOf(p);
    this.settle(actor, 'interrupted');
    const owner = this.top(actor).owner;
    owner.contended = true;
    if (this.eventRoom(owner)) this.addEvent(owner, 'lock_busy', { ...lockAttrs(lock, mode, holdersOf(lock), actor.name), 'lock.answer': answer });
  }

  // ---- The end of a run ------------------------------------------------------------------

  /**
   * Records an error that ended the run (a failed invariant, a deadlock) as an `exception` event
   * on the span the failing process was in, and on the root; both get status ERROR and are kept.
   */
  recordError(error: unknown): void {
    const message = error instanceof Error ? error.message : String(error);
    const type = error instanceof Error ? error.name : typeof error;
    const where = (error as { processName?: unknown } | null)?.processName;
    const attrs: Attrs = { 'exception.type': type, 'exception.message': message };
    for (const [p, actor] of this.actors) {
      if (typeof where === 'string' && where === `${p.name}#${p.id}`) {
        this.settle(actor, 'interrupted');
        const owner = this.top(actor).owner;
        this.addEvent(owner, 'exception', attrs, true);
        if (owner !== this.root) owner.errorMessage = message;
        for (let r: SpanRecord | null = owner; r !== null && r.fate === Fate.Open; r = r.parent) this.keepStructure(r);
      }
    }
    this.addEvent(this.root, 'exception', attrs, true);
    this.root.errorMessage = message;
  }

  /**
   * Ends every span still open at the current virtual time, actors in the order they started and
   * each stack innermost first, lanes at their last thread's end, then the root with the run's
   * totals.
   */
  endAll(rootAttributes: Attributes): void {
    const unfinished = { 'cvmsim.unfinished': true };
    for (const [p, actor] of [...this.actors, [null, this.engine] as const]) {
      this.settle(actor, 'unfinished');
      this.unwind(actor, unfinished);
      if (actor !== this.engine) {
        const lifetime = actor.stack.pop()!;
        if (lifetime.rec !== null) this.closeStructure(lifetime.rec, unfinished);
        else this.foldIdleThread(actor, p!);
      }
    }
    this.actors.clear();
    for (const [name, lane] of this.lanes) this.closeLane(name, lane);
    const ops = this.budget.kept();
    this.coverage = this.budget.seen.coverage(ops.map((r) => r.startNs), this.sim.now);
    this.root.endNs = this.sim.now;
    this.root.endAttrs = {
      ...(rootAttributes as Attrs),
      'cvmsim.trace.ops_seen': this.opsSeen,
      'cvmsim.trace.dropped_spans_total': this.budget.cutSpans,
      'cvmsim.trace.coverage': Number(this.coverage.toFixed(4)),
    };
  }

  /**
   * The kept records as spans, in begin order (a parent before its children): each span's parent
   * is its nearest kept ancestor, its link the nearest kept record of its cause.
   */
  spans(): SimSpan[] {
    const { factory, clock } = this;
    const out: SimSpan[] = [];
    const keptOf = (r: SpanRecord | null): SpanRecord | null => {
      let k = r;
      while (k !== null && k.span === null) k = k.parent;
      return k;
    };
    const records = [...this.kept, ...this.budget.kept()].sort((a, b) => a.seq - b.seq);
    for (const r of records) {
      const parent = keptOf(r.parent);
      let links: Link[] | undefined;
      const cause = keptOf(r.link);
      if (cause !== null && !isAncestor(cause, parent)) links = [{ context: cause.span!.spanContext() }];
      const span = r === this.root
        ? this.rootSpan.setAttributes(spanAttributes(r))
        : factory.start(r.service, r.name, parent === null ? null : parent.span, clock.toHrTime(r.startNs), spanAttributes(r), links);
      if (r.events !== null) for (const e of r.events) span.addEvent(e.name, toAttributes(e.attrs), clock.toHrTime(e.atNs));
      if (r.errorMessage !== null) span.setStatus({ code: SpanStatusCode.ERROR, message: r.errorMessage });
      r.span = span;
      out.push(span);
    }
    records.forEach((r, i) => factory.end(out[i]!, clock.toHrTime(Math.max(r.endNs, r.startNs))));
    return out;
  }

  // ---- Internals -------------------------------------------------------------------------

  private actorOf(p: Process<any> | null): Actor {
    if (p === null) return this.engine;
    return this.actors.get(p) ?? this.startActor(p, true);
  }

  /** An actor whose lifetime is `record` (own: a span of its own; else it runs as part of the lane or root). */
  private newActor(name: string, service: string, record: SpanRecord, own = false): Actor {
    const actor: Actor = { name, service, stack: [], record, wait: null, lastEnded: null };
    actor.stack.push({ kind: 'actor', actor, opId: 0, rec: own ? record : null, owner: record, lock: null, reopened: false });
    return actor;
  }

  private startActor(p: Process<any>, late: boolean): Actor {
    const now = this.sim.now;
    const lane = p.cpu === null ? this.root : this.laneFor(p.cpu.name, p.service, now);
    let actor: Actor;
    if (p.priority === PRIORITY_IDLE && lane !== this.root) {
      // The idle loop is the lane's idle time: its events and ops go on the lane.
      actor = this.newActor(p.name, p.service, lane);
    } else {
      const attrs: Attrs = {
        'thread.id': p.id,
        'thread.name': p.name,
        'cvmsim.priority': PRIORITY_NAMES[p.priority] ?? String(p.priority),
        'cvmsim.daemon': p.daemon,
      };
      if (p.cpu !== null) attrs['cvmsim.cpu'] = p.cpu.name;
      if (late) attrs['cvmsim.attached_late'] = true;
      const rec = new SpanRecord(this.nextSeq++, 'actor', p.service, p.name, lane, null, now, attrs, 0);
      this.keepStructure(rec);
      actor = this.newActor(p.name, p.service, rec, true);
    }
    if (lane !== this.root) noteThread(lane, p.name);
    this.actors.set(p, actor);
    return actor;
  }

  /** The lane of CPU `name`, made when something first runs on it. */
  private laneFor(name: string, service: string, atNs: number): SpanRecord {
    let lane = this.lanes.get(name);
    if (lane === undefined) {
      lane = new SpanRecord(this.nextSeq++, 'lane', service, name, this.root, null, atNs, { 'cvmsim.lane': 'cpu', 'cvmsim.cpu': name }, 0);
      this.keepStructure(lane);
      this.lanes.set(name, lane);
    }
    return lane;
  }

  private closeLane(name: string, lane: SpanRecord): void {
    const attrs: Attrs = { 'cvmsim.threads': (laneThreads.get(lane) ?? []).join(',') };
    const cpu = this.sim.cpus.find((c) => c.name === name);
    if (cpu !== undefined) {
      const a = cpu.accounting();
      Object.assign(attrs, { 'cvmsim.cpu.busy_ns': a.busyNs, 'cvmsim.cpu.spin_ns': a.spinNs, 'cvmsim.cpu.stall_ns': a.stallNs, 'cvmsim.cpu.idle_ns': a.idleNs });
    }
    lane.endNs = Math.max(lane.endNs, lane.startNs);
    lane.endAttrs = { ...(lane.endAttrs ?? {}), ...attrs };
  }

  private foldIdleThread(actor: Actor, p: Process<any>): void {
    const lane = actor.record;
    lane.endAttrs = { ...(lane.endAttrs ?? {}), 'cvmsim.idle_thread': p.name, 'cvmsim.idle_thread.cpu_time_ns': p.cpuTimeNs };
    lane.endNs = Math.max(lane.endNs, this.sim.now);
  }

  private record(seq: number, kind: RecordKind, service: string, name: string, parent: SpanRecord, actor: Actor | SpanRecord, startNs: number, attrs: Attrs | undefined): SpanRecord {
    const tally = actor instanceof SpanRecord ? actor : actor.record;
    return new SpanRecord(seq, kind, service, name, parent, tally, startNs, attrs, sampleHash(seq, this.salt));
  }

  private keepStructure(r: SpanRecord): void {
    this.budget.keep(r);
    this.kept.push(r);
  }

  private closeStructure(r: SpanRecord, attrs?: Attrs): void {
    r.endNs = this.sim.now;
    if (attrs !== undefined) r.endAttrs = { ...(r.endAttrs ?? {}), ...attrs };
    if (r.parent !== null && r.parent.kind === 'lane') r.parent.endNs = Math.max(r.parent.endNs, r.endNs);
  }

  /** An op has ended for good: it competes for the budget, and its parent inherits its keys. */
  private finishOp(actor: Actor, rec: SpanRecord): void {
    if (actor.lastEnded !== null && actor.lastEnded !== rec) this.flushLastEnded(actor);
    if (rec.fate === Fate.Kept) {
      this.inherit(rec);
      return;
    }
    this.offer(rec);
  }

  private offer(rec: SpanRecord): void {
    this.inherit(rec);
    this.opsSeen++;
    this.budget.seen.add(rec.startNs);
    this.budget.offer(rec);
  }

  private inherit(rec: SpanRecord): void {
    const p = rec.parent;
    if (p === null) return;
    if (rec.contended) p.contended = true;
    if (rec.sampleKey > p.sampleKey && !p.structural) p.sampleKey = rec.sampleKey;
  }

  /** The op this actor ended last has no exit to nest: it competes for the budget now. */
  private flushLastEnded(actor: Actor): void {
    const rec = actor.lastEnded;
    if (rec === null) return;
    actor.lastEnded = null;
    if (rec.fate === Fate.Open) this.offer(rec);
    else this.inherit(rec);
  }

  /** Puts an ended op back on its actor's stack: it stays open until the op nested in it ends. */
  private reopen(actor: Actor, rec: SpanRecord): void {
    actor.stack.push({ kind: 'op', actor, opId: 0, rec, owner: rec, lock: null, reopened: true });
  }

  private causeOf(link: number, rec: SpanRecord): SpanRecord | null {
    let cause = this.openOps.get(link)?.owner ?? null;
    if (cause === null) {
      const ended = this.endedOps[link % ENDED_OPS_REMEMBERED];
      if (ended !== undefined && ended.seq === link) cause = ended;
    }
    return cause === rec ? null : cause;
  }

  private rememberEnded(rec: SpanRecord): void {
    this.endedOps[rec.seq % ENDED_OPS_REMEMBERED] = rec;
  }

  private top(actor: Actor): Frame {
    return actor.stack[actor.stack.length - 1]!;
  }

  /** Before anything else the actor does: its held-back op competes, a pending wait is cut short. */
  private settle(actor: Actor, outcome: string): void {
    if (actor.lastEnded !== null) this.flushLastEnded(actor);
    this.settleWait(actor, outcome);
  }

  /**
   * A process that is doing something else is no longer waiting: a wait with no acquisition
   * was cut short (an Interrupt delivered at the lock, or the run ended).
   */
  private settleWait(actor: Actor, outcome: string): void {
    if (actor.wait === null) return;
    const wait = actor.wait;
    actor.wait = null;
    this.openWaits--;
    const top = this.top(actor);
    if (top.kind === 'lock' && top.lock === wait.lock) {
      actor.stack.pop();
      const rec = top.rec!;
      rec.endNs = this.sim.now;
      rec.endAttrs = { 'lock.outcome': outcome };
      this.finishOp(actor, rec);
    }
  }

  /** Ends every frame above the actor frame. */
  private unwind(actor: Actor, attrs: Attrs): void {
    while (actor.stack.length > 1) {
      const frame = actor.stack.pop()!;
      if (frame.opId !== 0) this.openOps.delete(frame.opId);
      const rec = frame.rec;
      if (rec === null) continue;
      if (rec.kind === 'phase') {
        this.closeStructure(rec, attrs);
        continue;
      }
      if (rec.fate !== Fate.Open && rec.fate !== Fate.Kept) continue;
      rec.endNs = this.sim.now;
      rec.endAttrs = { ...(rec.endAttrs ?? {}), ...attrs };
      this.finishOp(actor, rec);
    }
  }

  /** Whether `owner` has room for another event; counts the one it has no room for. */
  private eventRoom(owner: SpanRecord): boolean {
    if (owner.events === null || owner.events.length < EVENTS_PER_SPAN_MAX) return true;
    owner.droppedEvents++;
    this.droppedEvents++;
    return false;
  }

  /** Adds an event to `owner`, up to its limit (an exception always goes: the oldest then drops). */
  private addEvent(owner: SpanRecord, name: string, attrs: Attrs, always = false): void {
    if (owner.events === null) owner.events = [];
    else if (owner.events.length >= EVENTS_PER_SPAN_MAX && !always) {
      owner.droppedEvents++;
      this.droppedEvents++;
      return;
    }
    owner.events.push({ name, atNs: this.sim.now, attrs });
  }
}

/** Threads each lane ran, in the order they started. */
const laneThreads = new WeakMap<SpanRecord, string[]>();

function noteThread(lane: SpanRecord, name: string): void {
  let names = laneThreads.get(lane);
  if (names === undefined) laneThreads.set(lane, (names = []));
  if (!names.includes(name)) names.push(name);
}

function isAncestor(a: SpanRecord, of: SpanRecord | null): boolean {
  for (let r = of; r !== null; r = r.parent) if (r === a) return true;
  return false;
}

function lockAttrs(lock: ObservedLock, mode: LockMode, holders: string[], waiter: string): Attrs {
  return { 'lock.name': lock.name, 'lock.kind': lock.kind, 'lock.mode': mode, 'lock.holders': holders.join(','), 'lock.waiter': waiter };
}

/** Holders of a lock that can name them (every engine lock can; the interface does not promise it). */
function holdersOf(lock: ObservedLock): string[] {
  const named = lock as ObservedLock & { holderNames?: () => string[] };
  return typeof named.holderNames === 'function' ? named.holderNames() : [];
}

/**
 * A record's attributes as the span carries them: the begin attributes, the end attributes,
 * the status's name beside its hex value, `size` as the bytes of the whole span, folded short
 * waits, and what the budget cut under it.
 */
function spanAttributes(r: SpanRecord): Attributes {
  const a: Attributes = {};
  if (r.attrs !== undefined) for (const k of Object.keys(r.attrs)) a[k] = toAttributeValue(r.attrs[k]!);
  if (r.endAttrs !== null) for (const k of Object.keys(r.endAttrs)) a[k] = toAttributeValue(r.endAttrs[k]!);
  normalizeSize(a);
  if (a['status'] !== undefined && a['status.name'] === undefined) {
    const name = statusName(a['status']);
    if (name !== undefined) a['status.name'] = name;
  }
  if (r.shortWaits > 0) {
    a['lock.short_waits'] = r.shortWaits;
    a['lock.short_wait_ns'] = r.shortWaitNs;
  }
  if (r.cutBelow > 0) a['cvmsim.dropped_spans'] = r.cutBelow;
  if (r.droppedEvents > 0) a['cvmsim.dropped_events'] = r.droppedEvents;
  if (r.cut !== null) {
    let count = 0;
    let ns = 0;
    for (const [name, t] of [...r.cut].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))) {
      a[`cvmsim.cut.${name}`] = `${t.count} spans, ${t.ns} ns`;
      count += t.count;
      ns += t.ns;
    }
    a['cvmsim.cut_spans'] = count;
    a['cvmsim.cut_ns'] = ns;
  }
  return a;
}

/**
 * `size` is the bytes of the whole operation on every span. An aggregated step that stands for
 * n 4K operations and gives one's size (AUG, PVALIDATE and RMPUPDATE do) gets n x 4096, with
 * the single operation's size in `size.each`.
 */
function normalizeSize(a: Attributes): void {
  const n = a['cvmsim.aggregated.count'];
  const size = a['size'];
  if (typeof n === 'number' && n > 1 && size === 4096) {
    a['size'] = n * 4096;
    a['size.each'] = 4096;
  }
}
