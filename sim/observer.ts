import type { Process } from './process.ts';

/** Attribute values an observer passes on to spans. */
export type AttrValue = string | number | boolean | bigint;
export type Attrs = Record<string, AttrValue>;

export type LockMode = 'exclusive' | 'shared';

/** What a lock looks like to an observer. */
export interface ObservedLock {
  readonly name: string;
  readonly kind: 'spinlock' | 'mutex' | 'rwlock' | 'trylock' | 'semaphore';
}

/**
 * The engine's narrow interface for tracing. With no observer attached every call site costs
 * one branch (`if (sim.observer !== null)`). Times are the engine's virtual nanoseconds
 * (`sim.now`); `p` is the process on whose behalf the thing happens (null for engine callbacks).
 */
export interface SimObserver {
  processStart(p: Process<any>): void;
  processEnd(p: Process<any>): void;
  /**
   * An operation begins; returns an id for opEnd. `link` is the id of an op in another actor
   * that caused it (0: none). `actor` attributes the op to a pseudo-actor that runs on the
   * caller's CPU, such as the TDX module inside a SEAMCALL (undefined: the process's own).
   */
  opBegin(p: Process<any> | null, name: string, attrs: Attrs | undefined, link: number, actor: string | undefined): number;
  opEnd(id: number, attrs: Attrs | undefined): void;
  /**
   * A finished operation with explicit times (startNs <= endNs <= now), a child of p's current
   * op: the parts of an aggregated step laid out inside it without extra engine events.
   */
  opSpan?(p: Process<any> | null, name: string, attrs: Attrs | undefined, link: number, actor: string | undefined, startNs: number, endNs: number): void;
  lockWait(p: Process<any>, lock: ObservedLock, mode: LockMode, holders: string[]): void;
  lockAcquire(p: Process<any>, lock: ObservedLock, mode: LockMode, waitedNs: number): void;
  lockRelease(p: Process<any>, lock: ObservedLock, mode: LockMode, heldNs: number): void;
  lockBusy(p: Process<any> | null, lock: ObservedLock, mode: LockMode, answer: string): void;
  /** p's wait (for a lock, an event, a sleep) was cancelled by an interrupt at the current time. */
  waitCancelled?(p: Process<any>): void;
  /**
   * `runner` (a vCPU, or a thread) held CPU `cpu` (a host CPU, or a vCPU) over [startNs, endNs],
   * endNs <= now: what the CPU's lane in a trace shows. Reported by whoever schedules the runner.
   */
  cpuRun?(cpu: string, runner: string, startNs: number, endNs: number): void;
  instant(p: Process<any> | null, name: string, attrs: Attrs | undefined): void;
}
