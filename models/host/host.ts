import { Bandwidth, Semaphore, type Proc, type Sim } from '../../sim/index.ts';
import { assert } from '../../sim/assert.ts';
import { PAGE_SIZE } from './units.ts';

/** The host machine under a confidential guest: its CPUs and its memory bandwidth. */
export interface HostConfig {
  /**
   * Host CPUs available to the guest's vCPU threads for exit handling. Default: one per vCPU
   * (vCPU threads pinned to their own CPUs, nothing else running).
   */
  hostCpus?: number;
  /**
   * Socket memory bandwidth, bytes/s, shared by every clear and zero (processor sharing).
   * domain.md (parameter table, "memory-bandwidth-bound accept rate"): "100-300 GB/s DDR5
   * socket"; default the middle, 200 GB/s.
   */
  memoryBandwidthBytesPerSec?: number;
  /**
   * What one host CPU clears, bytes/s (clear_highpage() of guest_memfd pages on first use).
   * domain.md (parameter table, "page zeroing (host, per CPU)"): 12.9 GB/s for 2M pages,
   * baseline kernel (Ankur Arora, clear_pages v8, AMD Milan demand faults).
   */
  clearBytesPerSec?: number;
}

export const HOST_DEFAULTS = {
  memoryBandwidthBytesPerSec: 200e9,
  clearBytesPerSec: 12.9e9,
} as const;

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

export class Host {
  /**
   * The host CPUs that run vCPU threads while they are out of the guest: KVM's exit handling,
   * SEAMCALLs, RMPUPDATEs, host page clearing. A vCPU taking an exit needs one; with fewer host
   * CPUs than vCPUs in exits at once, exits queue for them (FIFO) and the waiting vCPU stays
   * stalled (waiters 'stall': it keeps its vCPU). Guest-mode execution is the guest model's CPUs
   * and is not charged here. The exit path that acquires a unit releases it on the same vCPU
   * thread (Semaphore.release checks it); busyNs() is the host CPU time spent in exits.
   */
  readonly cpus: Semaphore;
  readonly memory: Bandwidth;
  readonly clearRate: WriteRate;
  /** Bytes cleared by the host (guest_memfd first use). */
  bytesCleared = 0;

  constructor(
    readonly sim: Sim,
    vcpus: number,
    config: HostConfig = {},
  ) {
    const hostCpus = config.hostCpus ?? vcpus;
    const bandwidth = config.memoryBandwidthBytesPerSec ?? HOST_DEFAULTS.memoryBandwidthBytesPerSec;
    assert(bandwidth > 0 && bandwidth < Infinity, 'memoryBandwidthBytesPerSec must be positive and finite', bandwidth);
    this.cpus = new Semaphore(sim, 'host_cpus', hostCpus, 'stall');
    this.memory = new Bandwidth(sim, 'host_memory', bandwidth);
    this.clearRate = new WriteRate(config.clearBytesPerSec ?? HOST_DEFAULTS.clearBytesPerSec);
  }

  /** clear_highpage() of `bytes` on the calling CPU, sharing the socket's bandwidth. */
  *clearPages(bytes: number): Proc<void> {
    this.bytesCleared += bytes;
    yield* this.write(bytes, this.clearRate);
  }

  /**
   * Two runs of writes by one CPU, each at its own rate, as one transfer: uncontended it takes
   * exactly the two runs' time; when the socket saturates it gets its fair share as one stream.
   * (The aggregated accept path: a 2 MiB step's host clears and the module's zeroing.)
   */
  *write2(bytesA: number, rateA: WriteRate, bytesB: number, rateB: WriteRate): Proc<void> {
    const bytes = bytesA + bytesB;
    if (bytes === 0) return;
    const ns = (bytesA / 4096) * rateA.nsPer4K + (bytesB / 4096) * rateB.nsPer4K;
    yield this.memory.transfer(bytes, (bytes / ns) * 1e9);
  }

  /** Writes `bytes` at one CPU's `rate`, through the shared memory bandwidth. */
  *write(bytes: number, rate: WriteRate): Proc<void> {
    if (bytes === 0) return;
    yield this.memory.transfer(bytes, rate.bytesPerSec);
  }
}
