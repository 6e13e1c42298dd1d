import { assert, type Proc } from '../../sim/index.ts';
import { hex, roundDown } from './constants.ts';
import { subtractRanges, type PhysRange } from './memory_map.ts';
import type { UnacceptedMemory } from './unaccepted_memory.ts';

/**
 * memblock: the boot-time allocator ([linux:mm/memblock.c]). Allocations are top-down and reserve
 * their range; memblock_alloc_range_nid() accepts the range at once, because the caller is
 * going to use it before the page allocator exists ([unaccepted-v7-2022-06]: "memblock has to
 * accept memory on allocation").
 */
export class Memblock {
  reserved: PhysRange[] = [];

  constructor(readonly memory: readonly PhysRange[]) {}

  /** memblock_reserve(): ranges the kernel already uses (its image, firmware tables). */
  reserve(start: number, end: number): void {
    assert(start < end, 'empty memblock_reserve', { start: hex(start), end: hex(end) });
    const all = [...this.reserved, { start, end }].sort((a, b) => a.start - b.start);
    const merged: PhysRange[] = [];
    for (const r of all) {
      const last = merged[merged.length - 1];
      if (last !== undefined && r.start <= last.end) last.end = Math.max(last.end, r.end);
      else merged.push({ ...r });
    }
    this.reserved = merged;
  }

  /** RAM neither reserved nor allocated: what memblock_free_all() hands to the buddy allocator. */
  freeRanges(): PhysRange[] {
    return subtractRanges(this.memory, this.reserved);
  }

  reservedBytesIn(start: number, end: number): number {
    let n = 0;
    for (const r of this.reserved) n += Math.max(0, Math.min(end, r.end) - Math.max(start, r.start));
    return n;
  }

  /**
   * memblock_alloc(size, align): the highest free range that fits (below `limit`), reserved and
   * accepted. Fails loudly: memblock allocations at boot panic when they cannot be satisfied.
   */
  *alloc(unaccepted: UnacceptedMemory, size: number, align: number, limit = Infinity): Proc<number> {
    const free = this.freeRanges();
    for (let i = free.length - 1; i >= 0; i--) {
      const r = free[i]!;
      const top = Math.min(r.end, limit);
      if (top - size < r.start) continue;
      const found = roundDown(top - size, align);
      if (found < r.start) continue;
      this.reserve(found, found + size);
      yield* unaccepted.accept_memory(found, size, 'memblock');
      return found;
    }
    assert(false, 'memblock_alloc failed: out of memory at boot', { size, align });
  }
}
