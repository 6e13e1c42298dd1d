import type { Sim } from './sim.ts';
import { SUSPEND, type Blocker, type Process, type Yield } from './process.ts';

/**
 * A FIFO queue of items between processes (a work list, a request ring): put() never blocks;
 * get() evaluates to the oldest item, waiting if there is none. Getters are served in the
 * order they arrived.
 */
export class Store<T> implements Blocker {
  private readonly items: T[] = [];
  private head = 0;
  private readonly getters: Process<any>[] = [];

  constructor(
    readonly sim: Sim,
    readonly name: string,
  ) {}

  get length(): number {
    return this.items.length - this.head;
  }

  put(item: T): void {
    if (this.getters.length > 0) {
      this.sim.wake(this.getters.shift()!, item);
      return;
    }
    this.items.push(item);
  }

  get(): Yield {
    const sim = this.sim;
    if (this.length > 0) {
      const item = this.items[this.head++]!;
      if (this.head > 1024 && this.head * 2 > this.items.length) {
        this.items.splice(0, this.head);
        this.head = 0;
      }
      return sim.continueWith(item);
    }
    this.getters.push(sim.block(this));
    return SUSPEND;
  }

  cancelWait(p: Process<any>): void {
    const i = this.getters.indexOf(p);
    if (i >= 0) this.getters.splice(i, 1);
  }
}
