import { Histogram, countMetric, measureMetric, type MetricSpecs, type Proc, type Sim } from '../../sim/index.ts';
import { assert } from '../../sim/assert.ts';
import type { GuestConversionPlatform } from './platform.ts';

const PAGE = 4096;
const PMD = 2 * 1024 * 1024;

/**
 * The guest's costs of changing the encryption attribute of its direct map. ESTIMATE
 * [estimate:guest-cpa]: a PTE rewrite per 4K (20 ns), a large-page split per 2 MiB not yet
 * split (1 us: allocate and fill a PTE page), the global TLB flush (flush_tlb_all(): IPIs to
 * every vCPU, 2 us as [estimate:ipi]), and on TDX the cache flush of the range (clflush of 64
 * lines per 4K, 5 ns each).
 */
export interface SetMemoryCosts {
  ptePerPageNs: number;
  splitPer2mNs: number;
  tlbFlushAllNs: number;
  clflushPerPageNs: number;
}
export const SET_MEMORY_COSTS: SetMemoryCosts = { ptePerPageNs: 20, splitPer2mNs: 1_000, tlbFlushAllNs: 2_000, clflushPerPageNs: 320 };

/** What GuestMemEncrypt.metrics() writes (`vm1.guest.set_memory`). */
export const SET_MEMORY_METRICS: MetricSpecs = {
  'conversions.to_shared': countMetric('calls', 'set_memory_decrypted() calls'),
  'conversions.to_private': countMetric('calls', 'set_memory_encrypted() calls'),
  'conversions.4k': countMetric('calls', 'conversions of exactly 4 KiB'),
  'conversions.sub_2m': countMetric('calls', 'conversions larger than 4 KiB and smaller than 2 MiB'),
  'conversions.2m_plus': countMetric('calls', 'conversions of 2 MiB or more'),
  'conversions.bytes': countMetric('bytes', 'bytes converted, both directions'),
  warn_non_2m: countMetric('warnings', 'the RFC\'s check: conversions not 2 MiB aligned in start and size (WARN)'),
  'latency_ns.p50': measureMetric('ns', 'conversion latency (set_memory_*crypted() call to return), median'),
  'latency_ns.p99': measureMetric('ns', 'conversion latency, 99th percentile'),
  'latency_ns.max': measureMetric('ns', 'conversion latency, longest'),
  failures: countMetric('calls', 'conversions the hypervisor refused (-EIO)'),
  shared_bytes: countMetric('bytes', 'guest memory shared at the end (the guest page tables)'),
};

/**
 * set_memory_decrypted() / set_memory_encrypted() -> __set_memory_enc_pgtable()
 * ([linux:arch/x86/mm/pat/set_memory.c __set_memory_enc_pgtable]) with the guest's own state:
 * which 4K pages its page tables map shared (the TDX shared bit / the SNP C-bit clear), which
 * 2 MiB of the direct map are split. The order is the kernel's: the cache and TLB flush,
 * enc_status_change_prepare (TDX to private: MapGPA and re-accept; SNP to shared: PVALIDATE
 * rescind and PSC), the PTE change and flush, enc_status_change_finish (TDX to shared: MapGPA;
 * SNP to private: PSC and PVALIDATE). The platform hooks are one call here, in the place of the
 * hook that does work on each platform.
 */
export class GuestMemEncrypt {
  /** 1 where the guest maps the page shared. */
  readonly shared: Uint8Array;
  readonly split: Uint8Array;
  readonly latency = new Histogram('set_memory');
  readonly counters = { toShared: 0, toPrivate: 0, c4k: 0, sub2m: 0, c2m: 0, bytes: 0, warnNon2m: 0, failures: 0 };
  sharedPages = 0;
  readonly costs: SetMemoryCosts;

  constructor(
    readonly sim: Sim,
    readonly platform: GuestConversionPlatform,
    readonly kind: 'tdx' | 'snp',
    memoryBytes: number,
    costs: Partial<SetMemoryCosts> = {},
  ) {
    this.shared = new Uint8Array(memoryBytes / PAGE);
    this.split = new Uint8Array(Math.ceil(memoryBytes / PMD));
    this.costs = { ...SET_MEMORY_COSTS, ...costs };
  }

  *set_memory_decrypted(vcpu: number, addr: number, bytes: number): Proc<boolean> {
    return yield* this.setEnc(vcpu, addr, bytes, false);
  }

  *set_memory_encrypted(vcpu: number, addr: number, bytes: number): Proc<boolean> {
    return yield* this.setEnc(vcpu, addr, bytes, true);
  }

  isShared(addr: number, bytes: number): boolean {
    for (let p = addr / PAGE; p < (addr + bytes) / PAGE; p++) if (this.shared[p] !== 1) return false;
    return true;
  }

  private *setEnc(vcpu: number, addr: number, bytes: number, enc: boolean): Proc<boolean> {
    const { sim, costs, counters: c } = this;
    if (addr % PAGE !== 0 || bytes % PAGE !== 0 || bytes <= 0) assert(false, '__set_memory_enc_pgtable: unaligned address (WARN_ONCE)', { addr, bytes });
    const start = sim.now;
    const traced = sim.observer !== null;
    const id = traced ? sim.opBegin(enc ? 'set_memory_encrypted' : 'set_memory_decrypted', { gpa: `0x${addr.toString(16)}`, size: bytes }) : 0;
    for (let p = addr / PAGE; p < (addr + bytes) / PAGE; p++) {
      if ((this.shared[p] === 1) === !enc) assert(false, `converting a page already ${enc ? 'private' : 'shared'} in the guest page tables`, `0x${(p * PAGE).toString(16)}`);
    }
    if (enc) c.toPrivate++;
    else c.toShared++;
    if (bytes === PAGE) c.c4k++;
    else if (bytes < PMD) c.sub2m++;
    else c.c2m++;
    c.bytes += bytes;
    if (addr % PMD !== 0 || bytes % PMD !== 0) c.warnNon2m++;
    const pages = bytes / PAGE;
    // cpa_flush() before the change: TDX flushes the cache of the range (enc_cache_flush_required), TLB on the way to shared.
    if (this.kind === 'tdx') yield sim.compute(pages * costs.clflushPerPageNs + (enc ? 0 : costs.tlbFlushAllNs));
    let ok = true;
    if ((this.kind === 'tdx' && enc) || (this.kind === 'snp' && !enc)) ok = yield* this.platform.enc_status_change(vcpu, addr, addr + bytes, enc);
    if (ok) {
      // __change_page_attr_set_clr(): split the direct map's large pages, rewrite the PTEs, flush.
      let splits = 0;
      for (let r = Math.floor(addr / PMD); r <= Math.floor((addr + bytes - 1) / PMD); r++) {
        const whole = r * PMD >= addr && (r + 1) * PMD <= addr + bytes;
        if (!whole && this.split[r] === 0) (this.split[r] = 1), splits++;
      }
      yield sim.compute(splits * costs.splitPer2mNs + pages * costs.ptePerPageNs + costs.tlbFlushAllNs);
      this.shared.fill(enc ? 0 : 1, addr / PAGE, addr / PAGE + pages);
      this.sharedPages += enc ? -pages : pages;
      if ((this.kind === 'tdx' && !enc) || (this.kind === 'snp' && enc)) ok = yield* this.platform.enc_status_change(vcpu, addr, addr + bytes, enc);
    }
    if (!ok) c.failures++;
    this.latency.record(sim.now - start);
    if (traced) sim.opEnd(id, { ok });
    return ok;
  }

  metrics(prefix: string, out: Record<string, number>): void {
    const c = this.counters;
    out[`${prefix}.conversions.to_shared`] = c.toShared;
    out[`${prefix}.conversions.to_private`] = c.toPrivate;
    out[`${prefix}.conversions.4k`] = c.c4k;
    out[`${prefix}.conversions.sub_2m`] = c.sub2m;
    out[`${prefix}.conversions.2m_plus`] = c.c2m;
    out[`${prefix}.conversions.bytes`] = c.bytes;
    out[`${prefix}.warn_non_2m`] = c.warnNon2m;
    const h = this.latency;
    out[`${prefix}.latency_ns.p50`] = h.count > 0 ? h.quantile(0.5) : 0;
    out[`${prefix}.latency_ns.p99`] = h.count > 0 ? h.quantile(0.99) : 0;
    out[`${prefix}.latency_ns.max`] = h.count > 0 ? h.max : 0;
    out[`${prefix}.failures`] = c.failures;
    out[`${prefix}.shared_bytes`] = this.sharedPages * PAGE;
  }

  checkInvariants(): void {
    let n = 0;
    for (let i = 0; i < this.shared.length; i++) n += this.shared[i]!;
    assert(n === this.sharedPages, 'guest shared pages and their count disagree', { n, count: this.sharedPages });
  }
}
