import { Histogram } from '../../sim/index.ts';

/**
 * VM exits by reason, with the time the vCPU spent out of the guest for each reason. Reasons
 * are the architectural/KVM names: EPT_VIOLATION, TDVMCALL_HLT, VMGEXIT_PSC, VMGEXIT_MSR_PSC,
 * HLT, KVM_EXIT_HYPERCALL (the exit to userspace).
 */
export class ExitStats {
  private readonly byReason = new Map<string, { count: number; ns: number; hist: Histogram }>();

  /** `count` exits of `reason` that took `ns` together (an aggregated step: each ns / count). */
  record(reason: string, ns: number, count = 1): void {
    let r = this.byReason.get(reason);
    if (r === undefined) {
      r = { count: 0, ns: 0, hist: new Histogram(reason) };
      this.byReason.set(reason, r);
    }
    r.count += count;
    r.ns += ns;
    if (count > 0) r.hist.record(ns / count, count);
  }

  /** The distribution of one exit's time for `reason` (null if none), e.g. fault latency percentiles. */
  histogram(reason: string): Histogram | null {
    return this.byReason.get(reason)?.hist ?? null;
  }

  count(reason: string): number {
    return this.byReason.get(reason)?.count ?? 0;
  }

  total(): number {
    let t = 0;
    for (const r of this.byReason.values()) t += r.count;
    return t;
  }

  totalNs(): number {
    let t = 0;
    for (const r of this.byReason.values()) t += r.ns;
    return t;
  }

  /** `<prefix>.exits.<reason>` and `<prefix>.exit_ns.<reason>` entries, to merge into metrics(). */
  metrics(prefix: string, out: Record<string, number>): void {
    for (const [reason, r] of this.byReason) {
      out[`${prefix}.exits.${reason}`] = r.count;
      out[`${prefix}.exit_ns.${reason}`] = r.ns;
    }
    out[`${prefix}.exits.total`] = this.total();
    out[`${prefix}.exit_ns.total`] = this.totalNs();
  }
}
