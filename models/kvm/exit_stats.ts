/**
 * VM exits by reason, with the time the vCPU spent out of the guest for each reason. Reasons
 * are the architectural/KVM names: EPT_VIOLATION, TDVMCALL_HLT, VMGEXIT_PSC, VMGEXIT_MSR_PSC,
 * HLT, KVM_EXIT_HYPERCALL (the exit to userspace).
 */
export class ExitStats {
  private readonly counts = new Map<string, number>();
  private readonly times = new Map<string, number>();

  record(reason: string, ns: number, count = 1): void {
    this.counts.set(reason, (this.counts.get(reason) ?? 0) + count);
    this.times.set(reason, (this.times.get(reason) ?? 0) + ns);
  }

  count(reason: string): number {
    return this.counts.get(reason) ?? 0;
  }

  total(): number {
    let t = 0;
    for (const v of this.counts.values()) t += v;
    return t;
  }

  totalNs(): number {
    let t = 0;
    for (const v of this.times.values()) t += v;
    return t;
  }

  /** exits.<reason> and exit_ns.<reason> entries, to merge into metrics(). */
  metrics(out: Record<string, number>): void {
    for (const [reason, n] of this.counts) out[`exits.${reason}`] = n;
    for (const [reason, ns] of this.times) out[`exit_ns.${reason}`] = ns;
    out['exits.total'] = this.total();
    out['exit_ns.total'] = this.totalNs();
  }
}
