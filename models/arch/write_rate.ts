import type { Bandwidth, Proc } from '../../sim/index.ts';
import { assert } from '../../sim/assert.ts';
import { PAGE_SIZE } from './units.ts';

/**
 * A memory-writing rate expressed the way the engine can reproduce exactly: whole ns per 4 KiB.
 * A transfer of n pages at this rate takes exactly n times the per-page time when uncontended,
 * which is what lets the aggregated and per-page paths agree to the nanosecond.
 */
export class WriteRate {
  readonly nsPer4K: number;
  readonly bytesPerSec: number;
  constructor(bytesPerSec: number) {
    assert(bytesPerSec > 0 && bytesPerSec < Infinity, 'a write rate must be positive and finite', bytesPerSec);
    this.nsPer4K = Math.max(1, Math.round((PAGE_SIZE / bytesPerSec) * 1e9));
    this.bytesPerSec = (PAGE_SIZE * 1e9) / this.nsPer4K;
  }
}

/** Writes `bytes` at one CPU's `rate` through a socket's shared memory bandwidth. */
export function* writeMemory(memory: Bandwidth, bytes: number, rate: WriteRate): Proc<void> {
  if (bytes === 0) return;
  yield memory.transfer(bytes, rate.bytesPerSec);
}

/**
 * Two runs of writes by one CPU, each at its own rate, as one transfer: uncontended it takes
 * exactly the two runs' time; when the socket saturates it gets its fair share as one stream.
 * (The aggregated accept path: a 2 MiB step's host clears and the module's zeroing.)
 */
export function* writeMemory2(memory: Bandwidth, bytesA: number, rateA: WriteRate, bytesB: number, rateB: WriteRate): Proc<void> {
  const bytes = bytesA + bytesB;
  if (bytes === 0) return;
  const ns = (bytesA / PAGE_SIZE) * rateA.nsPer4K + (bytesB / PAGE_SIZE) * rateB.nsPer4K;
  yield memory.transfer(bytes, (bytes / ns) * 1e9);
}
