import { EventQueue, type Schedulable } from './event_queue.ts';
import {
  CONTINUE, Interrupt, Process, SUSPEND, type Blocker, type Proc, type SpawnOptions, type Yield,
} from './process.ts';
import { Condition, SimEvent } from './event.ts';
import { assert } from './assert.ts';
import { Fingerprint } from './fingerprint.ts';
import { RngRegistry, type Rng } from './rng.ts';
import { StatsRegistry } from './stats.ts';
import type { Attrs, SimObserver } from './observer.ts';
import type { Cpu } from './cpu.ts';
import type { Instant, Duration } from './clock.ts';

/** How a waiting thread spends a wait: off its CPU, or keeping it spinning or stalled. */
export type WaitStyle = 'sleep' | 'spin' | 'stall';

export interface SimOptions {
  seed: number;
  /** Record every event's (time, seq, kind) so a determinism check can name a divergence. */
  recordEvents?: boolean;
  /** Soft-lockup threshold, the kernel watchdog's default 20 s ([linux:kernel/watchdog.c]: 2 x watchdog_thresh). */
  softLockupNs?: Duration;
}

/** A failure inside a run, decorated with what reproduces it. */
export class SimError extends Error {
  override name = 'SimError';
  constructor(
    message: string,
    readonly seed: number,
    readonly time: Instant,
    readonly processName: string | null,
    override readonly cause?: unknown,
  ) {
    super(`${message} [seed=${seed} t=${time}ns${processName === null ? '' : ` process=${processName}`}]`);
  }
}

export interface SoftLockup {
  cpu: string;
  thread: string;
  /** When the watchdog would have fired: start of the atomic stretch plus the threshold. */
  at: Instant;
  stuckNs: Duration;
}

/** A cancellable callback scheduled in virtual time. */
export class Timer implements Schedulable {
  cancelled = false;
  constructor(
    readonly kindId: number,
    private readonly fn: () => void,
  ) {}
  fire(): boolean {
    if (this.cancelled) return false;
    this.fn();
    return true;
  }
  cancel(): void {
    this.cancelled = true;
  }
}

/**
 * The simulation handle: virtual time, the event queue, processes, seeded random streams,
 * statistics and the observer hook. Passed explicitly to every model function.
 */
export class Sim {
  now: Instant = 0;
  readonly seed: number;
  readonly queue = new EventQueue();
  readonly fingerprint: Fingerprint;
  readonly stats: StatsRegistry;
  readonly softLockupNs: Duration;
  readonly softLockups: SoftLockup[] = [];
  observer: SimObserver | null = null;

  /** The process whose generator is executing, or null inside engine callbacks. */
  current: Process<any> | null = null;
  /** Events with the same time as the previous one (they ran in scheduling order). */
  ties = 0;
  eventsStale = 0;

  private readonly rngs: RngRegistry;
  /** Live processes as an intrusive list in creation order (O(1) insert and remove). */
  private liveHead: Process<any> | null = null;
  private liveTail: Process<any> | null = null;
  private readonly kindNames: string[] = [];
  private readonly kindsByLabel = new Map<string, number>();
  private readonly processKinds = new Map<string, number>();
  private nextProcessId = 0;
  private immediate: unknown = undefined;
  private lastTime = -1;
  readonly cpus: Cpu[] = [];
  readonly blockers: Blocker[] = [];

  constructor(options: SimOptions) {
    assert(Number.isSafeInteger(options.seed), 'seed must be a safe integer', options.seed);
    this.seed = options.seed;
    this.rngs = new RngRegistry(options.seed);
    this.fingerprint = new Fingerprint(options.recordEvents ?? false);
    this.stats = new StatsRegistry(this);
    this.softLockupNs = options.softLockupNs ?? 20_000_000_000;
  }

  /** Events executed so far (stale, cancelled wake-ups not counted). */
  get eventsExecuted(): number {
    return this.fingerprint.count;
  }

  // ---- Random streams and kinds --------------------------------------------------------------

  /** The random stream named after its purpose, e.g. `guest.vcpu.3.workload`. */
  rng(name: string): Rng {
    return this.rngs.get(name);
  }

  /** Registers a label for fingerprints and divergence reports; returns its small id. */
  registerKind(label: string): number {
    this.kindNames.push(label);
    return this.kindNames.length - 1;
  }

  /** The kind id shared by every event with this label (processes of one name, timers of one label). */
  kindFor(label: string): number {
    let kind = this.kindsByLabel.get(label);
    if (kind === undefined) {
      kind = this.registerKind(label);
      this.kindsByLabel.set(label, kind);
    }
    return kind;
  }

  kindName(id: number): string {
    return this.kindNames[id] ?? `kind#${id}`;
  }

  // ---- Processes -----------------------------------------------------------------------------

  spawn<T>(body: Proc<T>, options: SpawnOptions | string): Process<T> {
    const opts = typeof options === 'string' ? { name: options } : options;
    const id = this.nextProcessId++;
    let kind = this.processKinds.get(opts.name);
    if (kind === undefined) {
      kind = this.kindFor(`process ${opts.name}`);
      this.processKinds.set(opts.name, kind);
    }
    const p = new Process<T>(this, id, kind, opts.name, body, opts);
    p.prevLive = this.liveTail;
    if (this.liveTail === null) this.liveHead = p;
    else this.liveTail.nextLive = p;
    this.liveTail = p;
    if (opts.cpu !== undefined) opts.cpu.attach(p);
    if (this.observer !== null) this.observer.processStart(p);
    this.queue.push(this.now, p, p.wakeGen);
    return p;
  }

  /** Runs p's generator until it suspends or finishes. Called by the engine only. */
  resume(p: Process<any>): void {
    const previous = this.current;
    this.current = p;
    p.state = 'running';
    p.blockedOn = null;
    let value = p.resumeValue;
    p.resumeValue = undefined;
    const gen = p.gen;
    try {
      for (;;) {
        let r: IteratorResult<Yield, unknown>;
        if (p.pendingThrow === undefined) {
          r = gen.next(value);
        } else {
          const e = p.pendingThrow;
          p.pendingThrow = undefined;
          r = gen.throw(e);
        }
        if (r.done === true) {
          this.finish(p, r.value);
          break;
        }
        if (r.value === SUSPEND) {
          if (p.state === 'running') p.state = 'blocked';
          break;
        }
        if (r.value !== CONTINUE) assert(false, 'a process must yield a command (sim.sleep, event.wait, lock.acquire, ...)', p);
        value = this.immediate;
        this.immediate = undefined;
      }
    } catch (e) {
      this.current = previous;
      p.state = 'done';
      throw this.decorate(e, p);
    }
    this.current = previous;
  }

  private finish(p: Process<any>, result: unknown): void {
    p.state = 'done';
    p.result = result;
    if (p.prevLive === null) this.liveHead = p.nextLive;
    else p.prevLive.nextLive = p.nextLive;
    if (p.nextLive === null) this.liveTail = p.prevLive;
    else p.nextLive.prevLive = p.prevLive;
    p.prevLive = p.nextLive = null;
    if (p.cpu !== null) p.cpu.detach(p);
    if (this.observer !== null) this.observer.processEnd(p);
    if (p.doneEvent !== null) p.doneEvent.succeed(result);
  }

  /** The running process; primitives call this to find whom to block. */
  running(): Process<any> {
    const p = this.current;
    assert(p !== null, 'a blocking primitive was called outside a process');
    return p;
  }

  /** Lets a primitive complete at once: the yield evaluates to value. */
  continueWith(value: unknown): Yield {
    this.immediate = value;
    return CONTINUE;
  }

  /**
   * Marks the running process blocked on b and releases its CPU (a blocked thread does not run).
   * Sleeping while non-preemptible is the kernel's "scheduling while atomic" bug.
   */
  block(b: Blocker): Process<any> {
    const p = this.running();
    if (p.cpu !== null) assert(p.preemptCount === 0 && p.irqsOff === 0, 'scheduling while atomic: blocking with preemption or interrupts disabled', p);
    p.blockedOn = b;
    p.blockedSince = this.now;
    if (p.cpu !== null && p.cpu.owner === p) p.cpu.release(p);
    return p;
  }

  /** Schedules p to resume now with value (its yield evaluates to value). */
  wake(p: Process<any>, value?: unknown): void {
    p.resumeValue = value;
    p.state = 'ready';
    this.queue.push(this.now, p, p.wakeGen);
  }

  /** Schedules p to resume at time `at`. */
  wakeAt(p: Process<any>, at: Instant, value?: unknown): void {
    p.resumeValue = value;
    this.queue.push(at, p, p.wakeGen);
  }

  // ---- Blocking primitives -------------------------------------------------------------------

  private readonly sleepBlocker: Blocker = { name: 'sleep', cancelWait: () => {} };

  /** Sleeps for ns of virtual time (rounded to an integer); the thread leaves its CPU. */
  sleep(ns: Duration): Yield {
    if (!(ns >= 0 && ns < Infinity)) assert(false, 'sleep duration must be finite and non-negative', ns);
    const p = this.current;
    if (p === null || p.cpu !== null) this.block(this.sleepBlocker); // the general path
    else {
      p.blockedOn = this.sleepBlocker;
      p.blockedSince = this.now;
    }
    this.queue.push(this.now + Math.round(ns), p!, p!.wakeGen);
    return SUSPEND;
  }

  /**
   * Computes for ns on the running thread's CPU: waits for the CPU if another thread owns it,
   * and may be preempted (a background thread by a normal one; round robin between equals).
   */
  compute(ns: Duration): Yield {
    const p = this.running();
    const cpu = p.cpu;
    assert(cpu !== null, 'compute() needs a thread with a CPU', p);
    assert(ns >= 0 && ns < Infinity, 'compute duration must be finite and non-negative', ns);
    const d = Math.round(ns);
    if (d === 0) return this.continueWith(undefined);
    p.computeRemaining = d;
    cpu.ensureOnCpu(p, null);
    return SUSPEND;
  }

  /**
   * Waits for ev while keeping the CPU: a vCPU in a VM exit, or a CPU inside a firmware call,
   * is unavailable to its other threads. Accounted as stall time.
   */
  stall(ev: SimEvent<any>): Yield {
    return this.waitKeepingCpu(ev, 'stall');
  }

  /**
   * Spins on the CPU until ev triggers: the CPU stays busy doing no work (accounted as spin), as
   * a `goto retry` loop around a lock does. Usually called with interrupts off.
   */
  spinUntil(ev: SimEvent<any>): Yield {
    return this.waitKeepingCpu(ev, 'spin');
  }

  private readonly stallBlocker: Blocker = { name: 'stall', cancelWait: () => {} };

  /** Keeps the CPU for ns without computing (a VM exit of known length), as one event. */
  stallFor(ns: Duration): Yield {
    if (!(ns >= 0 && ns < Infinity)) assert(false, 'stall duration must be finite and non-negative', ns);
    const p = this.running();
    const cpu = p.cpu;
    if (cpu === null) return assert(false, 'stallFor() needs a thread with a CPU', p) as never;
    const d = Math.round(ns);
    p.blockedOn = this.stallBlocker;
    p.blockedSince = this.now;
    if (cpu.owner === p) {
      cpu.setState('stall');
      this.queue.push(this.now + d, p, p.wakeGen);
    } else {
      cpu.ensureOnCpu(p, () => {
        cpu.setState('stall');
        this.queue.push(this.now + d, p, p.wakeGen);
      });
    }
    return SUSPEND;
  }

  private waitKeepingCpu(ev: SimEvent<any>, style: 'spin' | 'stall'): Yield {
    const p = this.running();
    const resume = (value: unknown) => this.unpark(p, value);
    this.park({ name: `${style} on ${ev.name}`, cancelWait: () => ev.removeCallback(resume) }, style);
    ev.onTrigger(resume);
    return SUSPEND;
  }

  /**
   * Parks the running process on b. 'sleep' leaves the CPU (block); 'spin' and 'stall' keep it,
   * busy but doing no work (a spinning lock waiter; a vCPU waiting inside a VM exit). The wait
   * ends with unpark().
   */
  park(b: Blocker, style: WaitStyle): Process<any> {
    if (style === 'sleep') return this.block(b);
    const p = this.running();
    const cpu = p.cpu;
    if (cpu === null) return assert(false, `a ${style} wait needs a thread with a CPU`, p) as never;
    p.blockedOn = b;
    p.blockedSince = this.now;
    if (cpu.owner === p) cpu.setState(style);
    else cpu.ensureOnCpu(p, () => cpu.setState(style));
    return p;
  }

  /** Ends a park(): p resumes now with value, once it holds its CPU again if it kept one. */
  unpark(p: Process<any>, value?: unknown): void {
    const cpu = p.cpu;
    if (cpu !== null && cpu.owner === p && !cpu.awaitingHost) {
      cpu.setState('busy');
    } else if (cpu !== null && p.onCpuGranted !== null) {
      // Still queued for its CPU (or its CPU for a host CPU): resume when it gets it.
      p.onCpuGranted = () => this.wake(p, value);
      return;
    }
    this.wake(p, value);
  }

  /**
   * cond_resched(): a voluntary preemption point. The running thread gives its CPU to a more
   * urgent waiting thread (or to an equal one when its slice is over) and continues when it gets
   * the CPU back; otherwise it continues at once.
   */
  condResched(): Yield {
    const p = this.running();
    if (p.cpu !== null && p.preemptCount === 0 && p.irqsOff === 0 && p.cpu.condResched(p)) return SUSPEND;
    return this.continueWith(undefined);
  }

  /** preempt_disable() for p (default: the running process). */
  preemptDisable(p: Process<any> = this.running()): void {
    p.preemptCount++;
    if (p.cpu !== null) p.cpu.enterAtomic(p);
  }

  preemptEnable(p: Process<any> = this.running()): void {
    assert(p.preemptCount > 0, 'preempt_enable without preempt_disable', p);
    p.preemptCount--;
    if (p.cpu !== null) p.cpu.exitAtomic(p);
  }

  /** local_irq_disable() for p (default: the running process). */
  localIrqDisable(p: Process<any> = this.running()): void {
    p.irqsOff++;
    if (p.cpu !== null) p.cpu.enterAtomic(p);
  }

  localIrqEnable(p: Process<any> = this.running()): void {
    assert(p.irqsOff > 0, 'local_irq_enable with interrupts enabled', p);
    p.irqsOff--;
    if (p.cpu !== null) p.cpu.exitAtomic(p);
  }

  /** touch_softlockup_watchdog(): a long atomic stretch that is known to be fine restarts the watchdog. */
  touchSoftlockupWatchdog(): void {
    const p = this.running();
    if (p.cpu !== null) p.cpu.touchWatchdog();
  }

  event<T = void>(name = 'event'): SimEvent<T> {
    return new SimEvent<T>(this, name);
  }

  /** Waits for the first of several events; evaluates to {index, value}. */
  anyOf(events: SimEvent<any>[]): Yield {
    for (let i = 0; i < events.length; i++) {
      if (events[i]!.triggered) return this.continueWith({ index: i, value: events[i]!.value });
    }
    const cond = new Condition('anyOf');
    const p = this.block(cond);
    const callbacks = events.map((e, index) => {
      const fn = (value: unknown) => {
        cond.detach();
        this.wake(p, { index, value });
      };
      e.onTrigger(fn);
      return fn;
    });
    cond.detach = () => events.forEach((e, i) => e.removeCallback(callbacks[i]!));
    return SUSPEND;
  }

  /** Waits for all of several events; evaluates to their values in order. */
  allOf(events: SimEvent<any>[]): Yield {
    let pending = events.filter((e) => !e.triggered).length;
    if (pending === 0) return this.continueWith(events.map((e) => e.value));
    const cond = new Condition('allOf');
    const p = this.block(cond);
    const fn = () => {
      if (--pending === 0) this.wake(p, events.map((e) => e.value));
    };
    for (const e of events) if (!e.triggered) e.onTrigger(fn);
    cond.detach = () => events.forEach((e) => e.removeCallback(fn));
    return SUSPEND;
  }

  interrupt(p: Process<any>, reason: unknown): void {
    assert(p.state !== 'done', 'interrupting a finished process', p);
    assert(p !== this.current, 'a process cannot interrupt itself', p);
    if (p.blockedOn !== null) p.blockedOn.cancelWait(p);
    if (p.cpu !== null) p.cpu.cancelFor(p);
    if (this.observer !== null) this.observer.waitCancelled?.(p);
    p.blockedOn = null;
    p.wakeGen++;
    p.pendingThrow = new Interrupt(reason);
    this.wake(p);
  }

  /** Calls fn after delay ns; returns a Timer that can be cancelled. */
  schedule(delay: Duration, fn: () => void, label = 'timer'): Timer {
    assert(delay >= 0, 'negative delay', delay);
    const t = new Timer(this.kindFor(label), fn);
    this.queue.push(this.now + Math.round(delay), t, 0);
    return t;
  }

  // ---- Running -------------------------------------------------------------------------------

  /** Executes one event. Returns false when the queue is empty. */
  step(): boolean {
    try {
      return this.drain(Infinity, 1) > 0;
    } catch (e) {
      throw this.decorate(e, this.current);
    }
  }

  /**
   * Runs until the queue is empty (then reports a deadlock if a non-daemon process is still
   * blocked), or until virtual time `until` (events at exactly `until` run; time ends at `until`).
   */
  run(options: { until?: Instant } = {}): void {
    const until = options.until ?? Infinity;
    try {
      this.drain(until, Infinity);
    } catch (e) {
      throw this.decorate(e, this.current);
    }
    if (until !== Infinity) {
      if (this.now < until) this.now = until;
      return;
    }
    this.checkDeadlock();
  }

  /** The event loop: executes up to `max` events with time <= until; returns how many ran. */
  private drain(until: Instant, max: number): number {
    const q = this.queue;
    const fp = this.fingerprint;
    let ran = 0;
    while (ran < max) {
      const item = q.popUntil(until);
      if (item === null) break;
      const t = q.poppedTime;
      if (t === this.lastTime) this.ties++;
      this.lastTime = t;
      this.now = t;
      if (!item.fire(q.poppedAux)) {
        this.eventsStale++;
        continue;
      }
      ran++;
      fp.mix(t, q.poppedSeq, item.kindId);
    }
    return ran;
  }

  /** Runs until cond() holds after an event, or the queue empties. Returns whether cond held. */
  runUntil(cond: () => boolean): boolean {
    try {
      while (!cond()) if (!this.step()) return cond();
      return true;
    } catch (e) {
      throw this.decorate(e, this.current);
    }
  }

  /** Ends the run: closes open CPU accounting and soft-lockup windows. */
  finishRun(): void {
    for (const cpu of this.cpus) cpu.closeAccounting();
  }

  private decorate(e: unknown, p: Process<any> | null): unknown {
    if (e instanceof SimError) return e;
    const message = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    const err = new SimError(message, this.seed, this.now, p === null ? null : `${p.name}#${p.id}`, e);
    if (e instanceof Error && e.stack !== undefined) err.stack = `${err.message}\n${e.stack}`;
    return err;
  }

  private checkDeadlock(): void {
    const stuck = this.processes().filter((p) => !p.daemon && p.state === 'blocked');
    if (stuck.length === 0) return;
    // The first 20 waiters are enough to see a cycle; the rest are counted.
    const shown = 20;
    const lines = stuck.slice(0, shown).map((p) => {
      const b = p.blockedOn;
      const holders = b?.holderNames?.() ?? [];
      const held = holders.length > 0 ? ` held by ${holders.join(', ')}` : '';
      const hostWait = p.cpu?.hostWaitOf(p) ?? null;
      const host = hostWait === null ? '' : `; ${hostWait}`;
      return `  ${p.name}#${p.id} waits for ${b === null ? 'nothing' : b.name}${held} since t=${p.blockedSince}ns${host}`;
    });
    if (stuck.length > shown) lines.push(`  ... and ${stuck.length - shown} more`);
    throw new SimError(`deadlock: ${stuck.length} process(es) blocked and nothing scheduled\n${lines.join('\n')}`,
      this.seed, this.now, null);
  }

  /** Live (unfinished) processes in creation order. */
  processes(): Process<any>[] {
    const out: Process<any>[] = [];
    for (let p = this.liveHead; p !== null; p = p.nextLive) out.push(p);
    return out;
  }

  // ---- Tracing hooks used by models ----------------------------------------------------------

  /** Begins an operation on behalf of the running process; returns an id for opEnd (0 untraced). */
  opBegin(name: string, attrs?: Attrs, link = 0, actor?: string): number {
    const o = this.observer;
    return o === null ? 0 : o.opBegin(this.current, name, attrs, link, actor);
  }

  opEnd(id: number, attrs?: Attrs): void {
    const o = this.observer;
    if (o !== null && id !== 0) o.opEnd(id, attrs);
  }

  /**
   * Records a finished operation [startNs, endNs] (both <= now) as a child of the running
   * process's current op: how an aggregated step shows its parts (an exit, a SEAMCALL) at the
   * times they would have had, without an engine event for each.
   */
  opSpan(name: string, startNs: Instant, endNs: Instant, attrs?: Attrs, link = 0, actor?: string): void {
    const o = this.observer;
    if (o === null || o.opSpan === undefined) return;
    if (!(startNs <= endNs && endNs <= this.now)) assert(false, 'opSpan needs startNs <= endNs <= now', { name, startNs, endNs, now: this.now });
    o.opSpan(this.current, name, attrs, link, actor, startNs, endNs);
  }

  instant(name: string, attrs?: Attrs): void {
    const o = this.observer;
    if (o !== null) o.instant(this.current, name, attrs);
  }

  reportSoftLockup(lockup: SoftLockup): void {
    this.softLockups.push(lockup);
    this.stats.counter('sim.soft_lockups').inc();
    const o = this.observer;
    if (o !== null) {
      o.instant(this.current, 'soft_lockup', {
        cpu: lockup.cpu, thread: lockup.thread, 'stuck.ns': lockup.stuckNs, at: lockup.at,
      });
    }
  }
}

/** Wraps a sub-operation in opBegin/opEnd so it shows as a span nested in its caller. */
export function* op<T>(sim: Sim, name: string, attrs: Attrs | undefined, body: Proc<T>): Proc<T> {
  const id = sim.opBegin(name, attrs);
  try {
    return yield* body;
  } finally {
    sim.opEnd(id);
  }
}
