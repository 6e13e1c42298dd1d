import { assert } from '../../sim/index.ts';
import { MAX_PAGE_ORDER } from './constants.ts';

/**
 * A zone's buddy free lists, struct free_area[0..MAX_PAGE_ORDER]: free blocks of 2^order pages,
 * named by their first pfn. Each list keeps insertion order (blocks are taken from the head and
 * added at the tail, as FPI_TO_TAIL frees do). In the seed-era allocator a free block may carry
 * PageUnaccepted: it is accepted when allocated, and passes the mark on when split or merged.
 */
export class FreeArea {
  readonly lists: Set<number>[] = [];
  readonly nr_free: number[] = [];
  /** Pages on all lists. */
  freePages = 0;
  /** Free block heads that carry PageUnaccepted (seed-era allocator only). */
  readonly unaccepted = new Set<number>();

  constructor() {
    for (let o = 0; o <= MAX_PAGE_ORDER; o++) {
      this.lists.push(new Set<number>());
      this.nr_free.push(0);
    }
  }

  add(pfn: number, order: number, pageUnaccepted = false): void {
    if (pfn % (1 << order) !== 0) assert(false, 'a free block must be aligned to its order', { pfn, order });
    const list = this.lists[order]!;
    if (list.has(pfn)) assert(false, 'block already on its free list', { pfn, order });
    list.add(pfn);
    this.nr_free[order]!++;
    this.freePages += 1 << order;
    if (pageUnaccepted) this.unaccepted.add(pfn);
  }

  /** Removes a block; returns whether it carried PageUnaccepted. */
  remove(pfn: number, order: number): boolean {
    const removed = this.lists[order]!.delete(pfn);
    if (!removed) assert(false, 'block not on its free list', { pfn, order });
    this.nr_free[order]!--;
    this.freePages -= 1 << order;
    return this.unaccepted.delete(pfn);
  }

  has(pfn: number, order: number): boolean {
    return this.lists[order]!.has(pfn);
  }

  /** The head of the order's list, or -1. */
  head(order: number): number {
    const list = this.lists[order]!;
    if (list.size === 0) return -1;
    return list.values().next().value as number;
  }

  /** The smallest order >= `from` with a free block, or -1 (__rmqueue_smallest's search). */
  smallestNonEmpty(from: number): number {
    for (let o = from; o <= MAX_PAGE_ORDER; o++) if (this.nr_free[o]! > 0) return o;
    return -1;
  }

  /** Recounts the lists (for invariants). */
  countPages(): number {
    let n = 0;
    for (let o = 0; o <= MAX_PAGE_ORDER; o++) n += this.lists[o]!.size << o;
    return n;
  }
}
