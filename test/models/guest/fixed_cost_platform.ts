import { Cpu, assert, type Proc, type Sim } from '../../../sim/index.ts';
import { GuestKernel, type GuestConfig } from '../../../models/guest/kernel.ts';
import type { AcceptPhase, GuestPlatform } from '../../../models/guest/platform.ts';

/** One arch_accept_memory() call as the test double saw it. */
export interface AcceptCall {
  vcpu: number;
  start: number;
  end: number;
  phase: AcceptPhase;
  t0: number;
  t1: number;
}

/**
 * A test double of the host side: a fixed cost per 4 KiB accepted, computed on the calling
 * vCPU, and a fixed cost per idle tick exit. It records every call and checks that no page is
 * accepted twice and that each call runs on the vCPU it names. Tests only.
 */
export class FixedCostPlatform implements GuestPlatform {
  readonly kind = 'tdx' as const;
  readonly calls: AcceptCall[] = [];
  idleExits = 0;
  rearmExits = 0;

  constructor(
    readonly sim: Sim,
    readonly config: { vcpus: readonly Cpu[] },
    readonly nsPer4K = 2500,
    readonly idleExitNs = 2000,
  ) {}

  *arch_accept_memory(vcpu: number, start: number, end: number, phase: AcceptPhase): Proc<void> {
    const sim = this.sim;
    assert(sim.running().cpu === this.config.vcpus[vcpu], 'arch_accept_memory on a thread not on its vCPU', vcpu);
    assert(start < end && start % 4096 === 0 && end % 4096 === 0, 'bad accept range', { start, end });
    const t0 = sim.now;
    yield sim.compute(((end - start) / 4096) * this.nsPer4K);
    this.calls.push({ vcpu, start, end, phase, t0, t1: sim.now });
  }

  *idle_tick_exit(vcpu: number): Proc<void> {
    assert(this.sim.running().cpu === this.config.vcpus[vcpu], 'idle exit on a thread not on its vCPU', vcpu);
    this.idleExits++;
    yield this.sim.compute(this.idleExitNs);
  }

  *tsc_deadline_exit(vcpu: number): Proc<void> {
    assert(this.sim.running().cpu === this.config.vcpus[vcpu], 'MSR exit on a thread not on its vCPU', vcpu);
    this.rearmExits++;
    yield this.sim.compute(this.idleExitNs);
  }

  checkInvariants(): void {
    const sorted = [...this.calls].sort((a, b) => a.start - b.start);
    for (let i = 1; i < sorted.length; i++) {
      assert(sorted[i]!.start >= sorted[i - 1]!.end, 'the host saw the same page accepted twice', { a: sorted[i - 1], b: sorted[i] });
    }
  }

  metrics(): Record<string, number> {
    return { accept_calls: this.calls.length, idle_exits: this.idleExits };
  }

  acceptedBytes(): number {
    return this.calls.reduce((n, c) => n + (c.end - c.start), 0);
  }
}

/** A guest kernel on its own vCPUs over the fixed-cost double. */
export function fixedCostKernel(sim: Sim, config: GuestConfig, nsPer4K = 2500, idleExitNs = 2000): { k: GuestKernel; platform: FixedCostPlatform } {
  const vcpus = Array.from({ length: config.vcpus }, (_, i) => new Cpu(sim, `vcpu${i}`));
  const platform = new FixedCostPlatform(sim, { vcpus }, nsPer4K, idleExitNs);
  return { k: new GuestKernel(sim, config, { vcpus, platform }), platform };
}
