import type { Schedulable } from './event_queue.ts';
import type { Sim } from './sim.ts';
import type { Cpu } from './cpu.ts';
import type { SimEvent } from './event.ts';

/**
 * What a process yields. Every blocking primitive (sim.sleep, event.wait, lock.acquire, ...)
 * does its work when called and returns one of these: SUSPEND parks the process until the
 * primitive wakes it; CONTINUE resumes it at once with the primitive's immediate value.
 */
export const SUSPEND: unique symbol = Symbol('suspend');
export const CONTINUE: unique symbol = Symbol('continue');
export type Yield = typeof SUSPEND | typeof CONTINUE;

/** A process body: `function*` that yields commands and returns a typed result. */
export type Proc<T = void> = Generator<Yield, T, any>;

/** Scheduling classes, most urgent first. */
export const enum Priority {
  /** Ordinary threads: round robin in time slices. */
  Normal = 0,
  /** Background threads: idle time only, or a configured share of the CPU (see CpuOptions). */
  Background = 1,
  /** The idle loop: runs only when nothing else wants the CPU; anyone preempts it. */
  Idle = 2,
}

/** Something a process can be blocked on: it can describe the wait and cancel it. */
export interface Blocker {
  readonly name: string;
  /** Removes p from this blocker's wait queue (interrupt). */
  cancelWait(p: Process<any>): void;
  /** Who holds this blocker, for deadlock reports. */
  holderNames?(): string[];
}

/** Delivered into a process at its yield point by Process.interrupt(). */
export class Interrupt extends Error {
  override name = 'Interrupt';
  constructor(readonly reason: unknown) {
    super(`interrupted: ${String(reason)}`);
  }
}

export type ProcessState = 'ready' | 'running' | 'blocked' | 'done';

export interface SpawnOptions {
  name: string;
  /** The CPU this thread runs on; needed for compute(), spinning and stalls. */
  cpu?: Cpu;
  priority?: Priority;
  /** A daemon may stay blocked forever (a server loop) without counting as a deadlock. */
  daemon?: boolean;
  /** The actor kind this thread belongs to, for traces (service.name: guest, kvm, vmm, ...). */
  service?: string;
}

/**
 * A simulated thread of control, driven by the engine. It is a Schedulable so that waking it
 * is one heap entry; its wake generation token cancels stale wake-ups (an interrupted sleep).
 */
export class Process<T = unknown> implements Schedulable {
  state: ProcessState = 'ready';
  result: T | undefined = undefined;
  readonly cpu: Cpu | null;
  readonly priority: Priority;
  readonly daemon: boolean;
  readonly service: string;

  /** Incremented to cancel a pending wake-up. */
  wakeGen = 0;
  /** The value the next resume delivers (what `yield` evaluates to). */
  resumeValue: unknown = undefined;
  /** An exception the next resume throws into the generator (interrupts). */
  pendingThrow: unknown = undefined;
  /** What this process is blocked on, for interrupts and deadlock reports. */
  blockedOn: Blocker | null = null;
  blockedSince = 0;

  // CPU scheduling state (see cpu.ts).
  computeRemaining = 0;
  onCpuGranted: (() => void) | null = null;
  preemptCount = 0;
  irqsOff = 0;
  cpuTimeNs = 0;

  /** Neighbours in the engine's list of live processes (creation order). */
  prevLive: Process<any> | null = null;
  nextLive: Process<any> | null = null;

  /** Lazily created when someone joins. */
  doneEvent: SimEvent<T> | null = null;

  constructor(
    readonly sim: Sim,
    readonly id: number,
    readonly kindId: number,
    readonly name: string,
    readonly gen: Proc<T>,
    options: SpawnOptions,
  ) {
    this.cpu = options.cpu ?? null;
    this.priority = options.priority ?? Priority.Normal;
    this.daemon = options.daemon ?? false;
    this.service = options.service ?? 'cvmsim';
  }

  fire(aux: number): boolean {
    if (aux !== this.wakeGen) return false;
    this.sim.resume(this);
    return true;
  }

  /** Waits for this process to finish; the yield evaluates to its return value. */
  join(): Yield {
    if (this.state === 'done') return this.sim.continueWith(this.result);
    if (this.doneEvent === null) this.doneEvent = this.sim.event<T>(`join ${this.name}`);
    return this.doneEvent.wait();
  }

  /**
   * Delivers an Interrupt exception at the process's yield point. Whatever it was waiting for
   * (a sleep, an event, a lock queue, a CPU) is cancelled first.
   */
  interrupt(reason: unknown): void {
    this.sim.interrupt(this, reason);
  }

  describe(): string {
    return `process ${this.name}#${this.id}`;
  }
}
