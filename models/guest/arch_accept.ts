import { assert, type Cpu, type Proc, type Sim } from '../../sim/index.ts';
import type { AcceptPhase, GuestPlatform } from './platform.ts';
import type { AcceptLedger } from './accept_ledger.ts';
import type { AcceptCause, GuestMetrics } from './metrics.ts';

/**
 * arch_accept_memory() as the guest calls it ([linux:arch/x86/include/asm/unaccepted_memory.h]):
 * the platform does the work (TDX tdx_accept_memory(), SNP snp_accept_memory()); the guest side
 * checks that nothing is accepted twice and measures the time each vCPU spends in it.
 */
export class ArchAccept {
  private readonly vcpuIndex = new Map<Cpu, number>();

  constructor(
    readonly sim: Sim,
    readonly platform: GuestPlatform,
    readonly vcpus: readonly Cpu[],
    readonly ledger: AcceptLedger,
    readonly metrics: GuestMetrics,
  ) {
    vcpus.forEach((cpu, i) => this.vcpuIndex.set(cpu, i));
  }

  /** The vCPU the running thread is on. */
  currentVcpu(): number {
    const cpu = this.sim.running().cpu;
    assert(cpu !== null, 'arch_accept_memory needs a thread on a vCPU');
    const i = this.vcpuIndex.get(cpu);
    assert(i !== undefined, 'arch_accept_memory from a thread that is not on a guest vCPU', cpu);
    return i;
  }

  *accept(start: number, end: number, phase: AcceptPhase, cause: AcceptCause): Proc<void> {
    const sim = this.sim;
    const vcpu = this.currentVcpu();
    // Begun before the call: a second accept of the same page, even concurrent, is caught; the
    // pages count as accepted only once the call has returned.
    this.ledger.begin(start, end, sim.now);
    const t0 = sim.now;
    const p = sim.running();
    const cpu0 = p.cpuTimeNs;
    yield* this.platform.arch_accept_memory(vcpu, start, end, phase);
    this.ledger.complete(start, end);
    const m = this.metrics;
    // The firmware's pre-accept runs before the kernel: counted apart, so the kernel's own
    // acceptance time is not mixed with what TDVF/OVMF did before ExitBootServices.
    (cause === 'firmware' ? m.firmwareAcceptNsPerVcpu : m.acceptNsPerVcpu)[vcpu]! += sim.now - t0;
    m.acceptComputeNsBy.set(cause, (m.acceptComputeNsBy.get(cause) ?? 0) + p.cpuTimeNs - cpu0);
    m.acceptCalls++;
    m.addAccepted(cause, end - start, sim.now - t0);
    m.acceptedBytes += end - start;
    m.acceptedCurveT.push(sim.now);
    m.acceptedCurveBytes.push(m.acceptedBytes);
  }
}
