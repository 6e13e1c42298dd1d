import { SpanStatusCode, type Attributes, type Link, type SpanContext } from '@opentelemetry/api';
import type { Attrs, LockMode, ObservedLock, Process, Sim, SimObserver } from '../sim/index.ts';
import { toAttributes } from './attributes.ts';
import type { VirtualClock } from './hrtime.ts';
import type { TraceLevel } from './options.ts';
import type { SimSpan } from './sim_span.ts';
import { EVENTS_PER_SPAN_MAX, type SpanFactory } from './span_factory.ts';

/** Detail ranks: a span is kept when its rank is at most the trace level's. */
const RANK: Record<TraceLevel, number> = { run: 0, phase: 1, op: 2, lock: 3 };

/** The service of the root span and of threads spawned without one. */
export const ROOT_SERVICE = 'cvmsim';

const PRIORITY_NAMES = ['normal', 'background', 'idle'];

/** A span that was kept: the budget allowed it and the level asked for it. */
interface Kept {
  readonly span: SimSpan;
  readonly parent: Kept | null;
  ended: boolean;
  droppedSpans: number;
  events: number;
  droppedEvents: number;
}

/** One entry of an actor's stack: its lifetime, an operation, or a lock wait. */
interface Frame {
  readonly kind: 'actor' | 'op' | 'lock';
  readonly actor: Actor;
  readonly opId: number;
  /** This frame's own span, or null when the level filtered it or the budget cut it. */
  readonly kept: Kept | null;
  /** The nearest kept span at or below this frame: where children, events and cut counts go. */
  readonly owner: Kept;
  readonly lock: ObservedLock | null;
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
  wait: Wait | null;
}

export interface TraceObserverOptions {
  level: TraceLevel;
  maxSpans: number;
  rootName: string;
  rootAttributes: Attributes;
}

/**
 * The engine's observer turned into OpenTelemetry spans in virtual time. One root span per run;
 * one span per actor (process) lifetime under it; operations nested under the actor's current
 * operation; an op's `actor` argument (the TDX module inside a SEAMCALL) gives the span that
 * service while it stays nested under its caller; the `link` argument becomes a span link to the
 * op in another actor that caused it. Lock waits are spans at level `lock`; BUSY answers,
 * contended acquisitions (below level `lock`), instants and soft lockups are span events.
 *
 * Spans beyond the budget are cut and counted on the nearest kept ancestor
 * (`cvmsim.dropped_spans`); levels filter without counting. Nothing here reads wall time.
 */
export class TraceObserver implements SimObserver {
  readonly root: Kept;
  readonly traceId: string;
  private readonly rank: number;
  private readonly actors = new Map<Process<any>, Actor>();
  private readonly engine: Actor;
  private readonly openOps = new Map<number, Frame>();
  /** Span contexts of ended kept ops, so a later op can link to them (at most maxSpans entries). */
  private readonly endedOps = new Map<number, SpanContext>();
  private nextOpId = 1;
  private openWaits = 0;
  keptSpans = 0;
  droppedSpans = 0;
  droppedEvents = 0;

  constructor(
    private readonly sim: Sim,
    private readonly factory: SpanFactory,
    private readonly clock: VirtualClock,
    private readonly options: TraceObserverOptions,
  ) {
    this.rank = RANK[options.level];
    const span = factory.start(ROOT_SERVICE, options.rootName, null, clock.toHrTime(0), options.rootAttributes);
    this.root = { span, parent: null, ended: false, droppedSpans: 0, events: 0, droppedEvents: 0 };
    this.keptSpans = 1;
    this.traceId = span.spanContext().traceId;
    this.engine = { name: 'engine', service: ROOT_SERVICE, stack: [], wait: null };
    this.engine.stack.push({ kind: 'actor', actor: this.engine, opId: 0, kept: this.root, owner: this.root, lock: null });
    for (const p of sim.processes()) this.actorOf(p);
  }

  // ---- Processes -------------------------------------------------------------------------

  processStart(p: Process<any>): void {
    this.startActor(p, false);
  }

  processEnd(p: Process<any>): void {
    const actor = this.actors.get(p);
    if (actor === undefined) return;
    this.settleWait(actor, 'exited');
    this.unwind(actor, { 'cvmsim.open_at_exit': true });
    const frame = actor.stack.pop()!;
    if (frame.kept !== null) this.end(frame.kept, { 'cvmsim.cpu_time_ns': p.cpuTimeNs });
    this.actors.delete(p);
  }

  // ---- Operations ------------------------------------------------------------------------

  opBegin(p: Process<any> | null, name: string, attrs: Attrs | undefined, link: number, actorName: string | undefined): number {
    const actor = this.actorOf(p);
    this.settleWait(actor, 'interrupted');
    const parent = actor.stack[actor.stack.length - 1]!;
    const rank = attrs !== undefined && attrs['cvmsim.level'] === 'phase' ? RANK.phase : RANK.op;
    let kept: Kept | null = null;
    if (rank <= this.rank) {
      const links = link === 0 ? undefined : this.linkTo(link);
      kept = this.startSpan(actorName ?? actor.service, name, parent.owner, toAttributes(attrs), links);
    }
    const id = this.nextOpId++;
    const frame: Frame = { kind: 'op', actor, opId: id, kept, owner: kept ?? parent.owner, lock: null };
    actor.stack.push(frame);
    this.openOps.set(id, frame);
    return id;
  }

  opEnd(id: number, attrs: Attrs | undefined): void {
    const frame = this.openOps.get(id);
    if (frame === undefined) return;
    const actor = frame.actor;
    this.openOps.delete(id);
    this.settleWait(actor, 'interrupted');
    const stack = actor.stack;
    if (stack[stack.length - 1] === frame) {
      stack.pop();
    } else {
      // Ops normally end innermost first; one that ends out of order leaves the others open.
      const at = stack.lastIndexOf(frame);
      if (at >= 0) stack.splice(at, 1);
    }
    if (frame.kept !== null) {
      this.end(frame.kept, attrs === undefined ? undefined : toAttributes(attrs));
      this.endedOps.set(id, frame.kept.span.spanContext());
    }
  }

  opSpan(p: Process<any> | null, name: string, attrs: Attrs | undefined, link: number, actorName: string | undefined, startNs: number, endNs: number): void {
    const actor = this.actorOf(p);
    this.settleWait(actor, 'interrupted');
    if (RANK.op > this.rank) return;
    const parent = actor.stack[actor.stack.length - 1]!;
    const links = link === 0 ? undefined : this.linkTo(link);
    const kept = this.startSpan(actorName ?? actor.service, name, parent.owner, toAttributes(attrs), links, startNs);
    if (kept !== null) this.end(kept, undefined, endNs);
  }

  instant(p: Process<any> | null, name: string, attrs: Attrs | undefined): void {
    const actor = this.actorOf(p);
    this.settleWait(actor, 'interrupted');
    const k = this.eventRoom(this.top(actor).owner);
    if (k !== null) this.addEvent(k, name, toAttributes(attrs));
  }

  // ---- Locks -----------------------------------------------------------------------------

  lockWait(p: Process<any>, lock: ObservedLock, mode: LockMode, holders: string[]): void {
    const actor = this.actorOf(p);
    this.settleWait(actor, 'interrupted');
    actor.wait = { lock, mode, holders };
    this.openWaits++;
    if (RANK.lock > this.rank) return;
    const parent = this.top(actor);
    const kept = this.startSpan(actor.service, `wait ${lock.name}`, parent.owner, lockAttributes(lock, mode, holders));
    actor.stack.push({ kind: 'lock', actor, opId: 0, kept, owner: kept ?? parent.owner, lock });
  }

  lockAcquire(p: Process<any>, lock: ObservedLock, mode: LockMode, waitedNs: number): void {
    if (this.openWaits === 0) return; // uncontended: the common case costs one comparison
    const actor = this.actors.get(p);
    const wait = actor?.wait;
    if (actor === undefined || wait === null || wait === undefined || wait.lock !== lock) return;
    actor.wait = null;
    this.openWaits--;
    const top = this.top(actor);
    if (top.kind === 'lock' && top.lock === lock) {
      actor.stack.pop();
      if (top.kept !== null) this.end(top.kept, { 'lock.wait_ns': waitedNs, 'lock.outcome': 'acquired' });
    } else if (RANK.op <= this.rank) {
      const k = this.eventRoom(top.owner);
      if (k !== null) this.addEvent(k, 'lock_contended', { ...lockAttributes(lock, mode, wait.holders), 'lock.wait_ns': waitedNs });
    }
  }

  lockRelease(): void {}

  waitCancelled(p: Process<any>): void {
    const actor = this.actors.get(p);
    if (actor !== undefined) this.settleWait(actor, 'interrupted');
  }

  lockBusy(p: Process<any> | null, lock: ObservedLock, mode: LockMode, answer: string): void {
    const actor = this.actorOf(p);
    this.settleWait(actor, 'interrupted');
    const k = this.eventRoom(this.top(actor).owner);
    if (k !== null) this.addEvent(k, 'lock_busy', { ...lockAttributes(lock, mode, holdersOf(lock)), 'lock.answer': answer });
  }

  // ---- The end of a run ------------------------------------------------------------------

  /**
   * Records an error that ended the run (a failed invariant, a deadlock) as an `exception` event
   * on the span the failing process was in, and on the root; both get status ERROR.
   */
  recordError(error: unknown): void {
    const message = error instanceof Error ? error.message : String(error);
    const type = error instanceof Error ? error.name : typeof error;
    const where = (error as { processName?: unknown } | null)?.processName;
    const attrs: Attributes = { 'exception.type': type, 'exception.message': message };
    for (const [p, actor] of this.actors) {
      if (typeof where === 'string' && where === `${p.name}#${p.id}`) {
        const owner = this.top(actor).owner;
        this.addEvent(this.live(owner), 'exception', attrs);
        if (owner !== this.root) owner.span.setStatus({ code: SpanStatusCode.ERROR, message });
      }
    }
    this.addEvent(this.root, 'exception', attrs);
    this.root.span.setStatus({ code: SpanStatusCode.ERROR, message });
  }

  /**
   * Ends every span still open at the current virtual time, actors in the order they started and
   * each stack innermost first, then the root with the run's totals.
   */
  endAll(rootAttributes: Attributes): void {
    const unfinished = { 'cvmsim.unfinished': true };
    for (const actor of [...this.actors.values(), this.engine]) {
      this.settleWait(actor, 'unfinished');
      this.unwind(actor, unfinished);
      if (actor !== this.engine) {
        const frame = actor.stack.pop()!;
        if (frame.kept !== null) this.end(frame.kept, unfinished);
      }
    }
    this.actors.clear();
    this.end(this.root, { ...rootAttributes, 'cvmsim.trace.dropped_spans_total': this.droppedSpans });
  }

  // ---- Internals -------------------------------------------------------------------------

  private actorOf(p: Process<any> | null): Actor {
    if (p === null) return this.engine;
    return this.actors.get(p) ?? this.startActor(p, true);
  }

  private startActor(p: Process<any>, late: boolean): Actor {
    const attrs: Attributes = {
      'thread.id': p.id,
      'thread.name': p.name,
      'cvmsim.priority': PRIORITY_NAMES[p.priority] ?? String(p.priority),
      'cvmsim.daemon': p.daemon,
    };
    if (p.cpu !== null) attrs['cvmsim.cpu'] = p.cpu.name;
    if (late) attrs['cvmsim.attached_late'] = true;
    const kept = this.startSpan(p.service, p.name, this.root, attrs);
    const actor: Actor = {
      name: p.name,
      service: p.service,
      stack: [],
      wait: null,
    };
    actor.stack.push({ kind: 'actor', actor, opId: 0, kept, owner: kept ?? this.root, lock: null });
    this.actors.set(p, actor);
    return actor;
  }

  private top(actor: Actor): Frame {
    return actor.stack[actor.stack.length - 1]!;
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
      if (top.kept !== null) this.end(top.kept, { 'lock.outcome': outcome });
    }
  }

  /** Ends every op frame above the actor frame. */
  private unwind(actor: Actor, attrs: Attributes): void {
    while (actor.stack.length > 1) {
      const frame = actor.stack.pop()!;
      if (frame.opId !== 0) this.openOps.delete(frame.opId);
      if (frame.kept !== null) this.end(frame.kept, attrs);
    }
  }

  private startSpan(service: string, name: string, parent: Kept, attributes: Attributes, links?: Link[], atNs = this.sim.now): Kept | null {
    if (this.keptSpans >= this.options.maxSpans) {
      this.live(parent).droppedSpans++;
      this.droppedSpans++;
      return null;
    }
    this.keptSpans++;
    const span = this.factory.start(service, name, this.live(parent).span, this.clock.toHrTime(atNs), attributes, links);
    return { span, parent, ended: false, droppedSpans: 0, events: 0, droppedEvents: 0 };
  }

  private linkTo(opId: number): Link[] | undefined {
    const context = this.openOps.get(opId)?.owner.span.spanContext() ?? this.endedOps.get(opId);
    return context === undefined ? undefined : [{ context }];
  }

  /** The nearest kept span that is still open: an out-of-order end can leave a child orphaned. */
  private live(k: Kept): Kept {
    let r = k;
    while (r.ended && r.parent !== null) r = r.parent;
    return r;
  }

  /** The live span an event goes to, or null (counted) when it already has its fill of events. */
  private eventRoom(owner: Kept): Kept | null {
    const k = this.live(owner);
    if (k.events < EVENTS_PER_SPAN_MAX) return k;
    k.droppedEvents++;
    this.droppedEvents++;
    return null;
  }

  /** Adds past the cap too (an exception must show): the SDK then drops the oldest and counts it. */
  private addEvent(k: Kept, name: string, attrs: Attributes): void {
    k.events++;
    k.span.addEvent(name, attrs, this.clock.toHrTime(this.sim.now));
  }

  private end(k: Kept, attrs: Attributes | undefined, atNs = this.sim.now): void {
    if (attrs !== undefined) k.span.setAttributes(attrs);
    if (k.droppedSpans > 0) k.span.setAttribute('cvmsim.dropped_spans', k.droppedSpans);
    if (k.droppedEvents > 0) k.span.setAttribute('cvmsim.dropped_events', k.droppedEvents);
    k.ended = true;
    this.factory.end(k.span, this.clock.toHrTime(atNs));
  }
}

function lockAttributes(lock: ObservedLock, mode: LockMode, holders: string[]): Attributes {
  return { 'lock.name': lock.name, 'lock.kind': lock.kind, 'lock.mode': mode, 'lock.holders': holders.join(',') };
}

/** Holders of a lock that can name them (every engine lock can; the interface does not promise it). */
function holdersOf(lock: ObservedLock): string[] {
  const named = lock as ObservedLock & { holderNames?: () => string[] };
  return typeof named.holderNames === 'function' ? named.holderNames() : [];
}
