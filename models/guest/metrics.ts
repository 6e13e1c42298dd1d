import { Histogram, MS } from '../../sim/index.ts';

/** Who asked for an accept, for the per-cause counters. */
export type AcceptCause =
  | 'firmware'
  | 'efi_stub'
  | 'decompressor'
  | 'memblock'
  | 'free_pages_core'
  | 'cond_accept_memory'
  | 'wmark_zero'
  | 'background'
  | 'seed_post_alloc';

/** An allocation slower than this is a latency spike (Q1 in the README: spikes above 1 ms). */
export const SPIKE_NS = 1 * MS;

/**
 * What the guest model measures. Plain fields, read by the experiments at the end of a run; the
 * accepted-bytes curve is sampled at each completed arch_accept_memory().
 */
export class GuestMetrics {
  /** Time each vCPU spent inside the kernel's arch_accept_memory() (the vCPU is held throughout). */
  readonly acceptNsPerVcpu: number[];
  /** Time each vCPU spent accepting in the firmware, before the kernel (cause 'firmware'). */
  readonly firmwareAcceptNsPerVcpu: number[];
  acceptCalls = 0;
  /** Bytes whose arch_accept_memory() has completed. */
  acceptedBytes = 0;
  /** Bytes accepted, by cause. */
  readonly acceptedBytesBy = new Map<AcceptCause, number>();
  /** (virtual time, total bytes accepted) after each arch_accept_memory(). */
  readonly acceptedCurveT: number[] = [];
  readonly acceptedCurveBytes: number[] = [];
  /** accept_memory() callers that found an overlapping range on accepting_list, and their spin time. */
  acceptingListWaits = 0;
  /** Of those, waits for an entry that shared no unit with the caller's range (the v6.6 overlap test's false overlaps). */
  acceptingListFalseWaits = 0;
  acceptingListWaitNs = 0;
  /** MAX_ORDER blocks accepted by cond_accept_memory() while watermarks were still zero. */
  wmarkZeroBlocks = 0;
  /** Time inside arch_accept_memory(), by cause (vCPU held throughout). */
  readonly acceptNsBy = new Map<AcceptCause, number>();
  /** Of that, the accepting threads' own compute (the rest is stall in exits and memory transfers). */
  readonly acceptComputeNsBy = new Map<AcceptCause, number>();
  /** MAX_ORDER blocks the background acceptor threads accepted. */
  backgroundBlocks = 0;
  oomEvents = 0;
  /** Allocation latency of the application phase, per 4K page. */
  readonly allocLatency = new Histogram('guest.alloc_latency_ns');
  allocSpikes = 0;
  /** Page allocations made, and those that found no page in any zone. */
  allocatedPages = 0;
  /** Milestones (virtual ns) the boot workload reaches. */
  readonly milestones = new Map<string, number>();

  constructor(vcpus: number) {
    this.acceptNsPerVcpu = new Array<number>(vcpus).fill(0);
    this.firmwareAcceptNsPerVcpu = new Array<number>(vcpus).fill(0);
  }

  addAccepted(cause: AcceptCause, bytes: number, ns: number): void {
    this.acceptedBytesBy.set(cause, (this.acceptedBytesBy.get(cause) ?? 0) + bytes);
    this.acceptNsBy.set(cause, (this.acceptNsBy.get(cause) ?? 0) + ns);
  }

  recordAllocLatency(ns: number, pages = 1): void {
    this.allocLatency.record(ns, pages);
    if (ns > SPIKE_NS) this.allocSpikes += pages;
  }

  get acceptNsTotal(): number {
    return this.acceptNsPerVcpu.reduce((a, b) => a + b, 0);
  }
}
