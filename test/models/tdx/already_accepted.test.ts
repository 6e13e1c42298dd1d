import { describe, expect, it } from 'vitest';
import { MiB, Sim } from '../../../sim/index.ts';
import { createTdxPlatform } from '../../../models/tdx/tdx_platform.ts';
import { PlatformConfigError } from '../../../models/host/config_check.ts';
import { makeVcpus, onVcpu0 } from '../host/fixture.ts';

describe('accepting accepted memory panics the guest (TDX_PAGE_ALREADY_ACCEPTED)', () => {
  it.each(['per-page', 'aggregate'] as const)('%s: a second accept of a 4K page fails with the address and the status', (fidelity) => {
    const sim = new Sim({ seed: 1 });
    const cpus = makeVcpus(sim, 1);
    const platform = createTdxPlatform(sim, { gpaBytes: 8 * MiB, vcpus: cpus, fidelity });
    expect(() => onVcpu0(sim, platform, cpus, function* () {
      yield* platform.arch_accept_memory(0, 0, 2 * MiB, 'runtime');
      yield* platform.arch_accept_memory(0, MiB, MiB + 4096, 'runtime');
    })).toThrow(/TDG\.MEM\.PAGE\.ACCEPT\(0x0*100000, 4K\) = TDX_PAGE_ALREADY_ACCEPTED/);
  });

  it('a 2M-accepted region answers TDX_PAGE_ALREADY_ACCEPTED to a 2M and then to the 4K retry', () => {
    const sim = new Sim({ seed: 1 });
    const cpus = makeVcpus(sim, 1);
    const platform = createTdxPlatform(sim, { gpaBytes: 8 * MiB, vcpus: cpus, sept: '2m' });
    expect(() => onVcpu0(sim, platform, cpus, function* () {
      yield* platform.arch_accept_memory(0, 2 * MiB, 4 * MiB, 'runtime');
      yield* platform.arch_accept_memory(0, 2 * MiB, 4 * MiB, 'runtime');
    })).toThrow(/TDX_PAGE_ALREADY_ACCEPTED \(0x00000b0a00000001\)/);
  });
});

describe('host-side invariants and configuration', () => {
  it('checkInvariants notices an accepted page that was never AUGed', () => {
    const sim = new Sim({ seed: 1 });
    const cpus = makeVcpus(sim, 1);
    const platform = createTdxPlatform(sim, { gpaBytes: 8 * MiB, vcpus: cpus });
    onVcpu0(sim, platform, cpus, () => platform.arch_accept_memory(0, 0, 4 * MiB, 'runtime'));
    platform.checkInvariants();
    const sept = platform.module.sept;
    sept.aug4k.words[3] = 0; // forget 32 AUGs behind the module's back
    expect(() => platform.checkInvariants()).toThrow(/accepted without TDH\.MEM\.PAGE\.AUG|AUG bitmap and its count disagree/);
  });

  it('a bad configuration value names the field and the allowed values', () => {
    const sim = new Sim({ seed: 1 });
    const cpus = makeVcpus(sim, 1);
    expect(() => createTdxPlatform(sim, { gpaBytes: 8 * MiB, vcpus: cpus, sept: '1g' as never })).toThrow(PlatformConfigError);
    expect(() => createTdxPlatform(sim, { gpaBytes: 8 * MiB, vcpus: cpus, sept: '1g' as never })).toThrow(/sept must be one of '4k', '2m'/);
    expect(() => createTdxPlatform(sim, { gpaBytes: 8 * MiB, vcpus: cpus, hostCpus: 0 })).toThrow(/hostCpus must be an integer/);
    expect(() => createTdxPlatform(sim, { gpaBytes: 8 * MiB, vcpus: cpus, tdxCosts: { augBodyNs: -1 } })).toThrow(/tdxCosts\.augBodyNs/);
  });
});
