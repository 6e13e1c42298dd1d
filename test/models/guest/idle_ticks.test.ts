import { describe, expect, it } from 'vitest';
import { MiB, Sim, type Proc } from '../../../sim/index.ts';
import { acceptBoot } from '../../../experiments/accept_boot.ts';
import { defaultParams } from '../../../experiments/params.ts';
import { KVM_COSTS } from '../../../models/kvm/kvm_costs.ts';
import { TDX_COSTS } from '../../../models/tdx/tdx_costs.ts';
import { snpVm, tdxVm, type TestVm } from '../host/fixture.ts';

/** One idle tick's exits as the host sees them: (exit, start, end) in virtual ns. */
function tickLog(make: (sim: Sim) => TestVm): string[] {
  const sim = new Sim({ seed: 1 });
  const t = make(sim);
  const log: string[] = [];
  sim.spawn((function* (): Proc<void> {
    let at = sim.now;
    yield* t.tsc_deadline_exit(0);
    log.push(`tsc_deadline ${at} ${sim.now}`);
    at = sim.now;
    yield* t.idle_tick_exit(0);
    log.push(`hlt ${at} ${sim.now}`);
  })(), { name: 'vcpu0', cpu: t.vcpus[0]!, service: 'guest' });
  sim.run();
  return log;
}

describe('an idle tick as the host sees it', () => {
  it('TDX: the TSC-deadline re-arm is a TDVMCALL<WRMSR> exit (TD exit, KVM\'s MSR emulation, entry), then the HLT exit', () => {
    const { tdExitNs, tdEntryNs } = TDX_COSTS;                  // 1100 + 1100 ns
    const exit = tdExitNs + KVM_COSTS.msrNs + tdEntryNs; // TD exit, kvm_set_lapic_tscdeadline_msr(), TDH.VP.ENTER
    const hlt = tdExitNs + KVM_COSTS.hltNs + tdEntryNs;
    expect(tickLog((sim) => tdxVm(sim, { gpaBytes: 2 * MiB, vcpus: 1 }))).toEqual([`tsc_deadline 0 ${exit}`, `hlt ${exit} ${exit + hlt}`]);
  });

  it('SNP: the same two exits through VMGEXIT (MSR) and the intercepted HLT', () => {
    const exit = 250 + KVM_COSTS.msrNs + 250;
    const hlt = 250 + KVM_COSTS.hltNs + 250;
    expect(tickLog((sim) => snpVm(sim, { gpaBytes: 2 * MiB, vcpus: 1 }))).toEqual([`tsc_deadline 0 ${exit}`, `hlt ${exit} ${exit + hlt}`]);
  });
});

describe('the tick in a booting guest', () => {
  const base = { ...defaultParams(acceptBoot), memory_gib: 2, vcpus: 4 };
  const boot = (over: Record<string, unknown>) => {
    const sim = new Sim({ seed: 1 });
    return acceptBoot.run({ ...base, ...over } as never, sim).metrics;
  };

  it('each idle tick re-arms the TSC deadline with an exit of its own; tick_rearm_exit=false leaves it out', () => {
    const on = boot({});
    const off = boot({ tick_rearm_exit: false });
    expect(on['vm1.kvm.exits.TDVMCALL_WRMSR']).toBe(on['idle_ticks']);
    expect(off['vm1.kvm.exits.TDVMCALL_WRMSR'] ?? 0).toBe(0);
    expect(on['vm1.vcpus.stall_ns']!).toBeGreaterThan(off['vm1.vcpus.stall_ns']!);
  });

  it('NOHZ idle: idle vCPUs tick until clocksource_done_booting (an fs_initcall), then stop; without it they tick to the end', () => {
    const periodic = boot({ nohz_idle: false });
    const nohz = boot({ nohz_idle: true });
    expect(nohz['idle_ticks']!).toBeGreaterThan(0); // the APs idle through early boot with a periodic tick
    expect(nohz['idle_ticks']!).toBeLessThan(periodic['idle_ticks']! / 2);
  });
});
