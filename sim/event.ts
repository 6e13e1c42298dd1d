import type { Sim } from './sim.ts';
import { SUSPEND, type Blocker, type Process, type Yield } from './process.ts';
import { assert } from './assert.ts';

type Waiter<T> = Process<any> | ((value: T) => void);

/**
 * A one-shot event: processes wait for it; succeed() wakes them all, in the order they started
 * waiting, at the current virtual time.
 */
export class SimEvent<T = void> implements Blocker {
  triggered = false;
  value: T | undefined = undefined;
  private waiters: Waiter<T>[] = [];

  constructor(
    readonly sim: Sim,
    readonly name: string,
  ) {}

  succeed(value?: T): void {
    assert(!this.triggered, 'event triggered twice', this);
    this.triggered = true;
    this.value = value;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) {
      if (typeof w === 'function') w(value as T);
      else this.sim.wake(w, value);
    }
  }

  /** Blocks the running process until the event triggers; evaluates to the event's value. */
  wait(): Yield {
    const sim = this.sim;
    if (this.triggered) return sim.continueWith(this.value);
    const p = sim.block(this);
    this.waiters.push(p);
    return SUSPEND;
  }

  /** Calls fn when the event triggers (at once if it already has). */
  onTrigger(fn: (value: T) => void): void {
    if (this.triggered) fn(this.value as T);
    else this.waiters.push(fn);
  }

  removeCallback(fn: (value: T) => void): void {
    const i = this.waiters.indexOf(fn);
    if (i >= 0) this.waiters.splice(i, 1);
  }

  cancelWait(p: Process<any>): void {
    const i = this.waiters.indexOf(p);
    if (i >= 0) this.waiters.splice(i, 1);
  }

  describe(): string {
    return `event ${this.name}`;
  }
}

/** Blocker for anyOf/allOf: cancelling it detaches its callbacks from every event. */
export class Condition implements Blocker {
  detach: () => void = () => {};
  constructor(readonly name: string) {}
  cancelWait(): void {
    this.detach();
  }
}
