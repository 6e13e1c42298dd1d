import { describe, expect, it } from 'vitest';
import { MiB, Sim } from '../../../sim/index.ts';
import { PlatformConfigError } from '../../../models/host/config_check.ts';
import { onVcpu0, tdxVm } from '../host/fixture.ts';

describe('accepting accepted memory panics the guest (TDX_PAGE_ALREADY_ACCEPTED)', () => {
  it.each(['per-page', 'aggregate'] as const)('%s: a second accept of a 4K page fails with the address and the status', (fidelity) => {
    const sim = new Sim({ seed: 1 });
    const platform = tdxVm(sim, { gpaBytes: 8 * MiB, vcpus: 1, fidelity });
    expect(() => onVcpu0(sim, platform, function* () {
      yield* platform.arch_accept_memory(0, 0, 2 * MiB, 'runtime');
      yield* platform.arch_accept_memory(0, MiB, MiB + 4096, 'runtime');
    })).toThrow(/TDG\.MEM\.PAGE\.ACCEPT\(0x0*100000, 4K\) = TDX_PAGE_ALREADY_ACCEPTED/);
  });

  it('a 2M-accepted region answers TDX_PAGE_ALREADY_ACCEPTED to a 2M and then to the 4K retry', () => {
    const sim = new Sim({ seed: 1 });
    const platform = tdxVm(sim, { gpaBytes: 8 * MiB, vcpus: 1, sept: '2m' });
    expect(() => onVcpu0(sim, platform, function* () {
      yield* platform.arch_accept_memory(0, 2 * MiB, 4 * MiB, 'runtime');
      yield* platform.arch_accept_memory(0, 2 * MiB, 4 * MiB, 'runtime');
    })).toThrow(/TDX_PAGE_ALREADY_ACCEPTED \(0x00000b0a00000001\)/);
  });
});

describe('host-side invariants and configuration', () => {
  it('checkInvariants notices an accepted page that was never AUGed', () => {
    const sim = new Sim({ seed: 1 });
    const platform = tdxVm(sim, { gpaBytes: 8 * MiB, vcpus: 1 });
    onVcpu0(sim, platform, () => platform.arch_accept_memory(0, 0, 4 * MiB, 'runtime'));
    platform.checkInvariants();
    const sept = platform.td.sept;
    sept.aug4k.words[3] = 0; // forget 32 AUGs behind the module's back
    // The VM's PAMT check (its 4K leaves against the PAMT entries of their host block) runs first and sees it too.
    expect(() => platform.checkInvariants()).toThrow(/accepted without TDH\.MEM\.PAGE\.AUG|AUG bitmap and its count disagree|4K leaves and the PAMT 4K entries in use/);
  });

  it('a bad configuration value names the field and the allowed values', () => {
    const sim = new Sim({ seed: 1 });
    expect(() => tdxVm(sim, { gpaBytes: 8 * MiB, vcpus: 1, sept: '1g' as never })).toThrow(PlatformConfigError);
    expect(() => tdxVm(sim, { gpaBytes: 8 * MiB, vcpus: 1, sept: '1g' as never })).toThrow(/sept must be one of '4k', '2m'/);
    expect(() => tdxVm(sim, { gpaBytes: 8 * MiB, vcpus: 1, cpus: 0 })).toThrow(/host_cpus must be an integer/);
    expect(() => tdxVm(sim, { gpaBytes: 8 * MiB, vcpus: 1, tdxCosts: { augBodyNs: -1 } })).toThrow(/tdxCosts\.augBodyNs/);
  });
});
