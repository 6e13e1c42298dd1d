import { describe, expect, it } from 'vitest';
import { Sim } from '../../sim/index.ts';
import { acceptBoot } from '../../experiments/accept_boot.ts';
import { acceptThroughput } from '../../experiments/accept_throughput.ts';
import { resolveParams, checkParams } from '../../experiments/params.ts';
import { parseGrid } from '../../experiments/plan.ts';
import { reproduceCommand } from '../../experiments/fuzz/reproduce.ts';
import { loadCatalog } from '../../experiments/catalog.ts';
import { UsageError } from '../../experiments/usage_error.ts';
import { buildSingleVm } from '../../experiments/wiring.ts';
import type { ParamsOf } from '../../experiments/experiment.ts';

type BootParams = ParamsOf<typeof acceptBoot.params>;

describe('kernel_config: a preset of the guest parameters ([linux:arch/x86/configs/x86_64_defconfig])', () => {
  it('distro keeps the defaults; defconfig turns off deferred struct-page init, stops idle ticks, leaves THP out', () => {
    const distro = resolveParams(acceptBoot, {});
    expect([distro.deferred_struct_page_init, distro.nohz_idle, distro.thp, distro.hz]).toEqual([true, false, 'madvise', 1000]);
    const def = resolveParams(acceptBoot, { sets: ['kernel_config=defconfig'] });
    expect([def.deferred_struct_page_init, def.nohz_idle, def.thp, def.hz]).toEqual([false, true, 'never', 1000]);
    // ... and the guest the model builds from it.
    const { vm } = buildSingleVm(new Sim({ seed: 1 }), def as unknown as BootParams);
    expect(vm.guest.config.deferredStructPageInit).toBe(false);
  });

  it('an explicit --set (or config value, or baseline case) beats the preset, in any order', () => {
    for (const sets of [['kernel_config=defconfig', 'deferred_struct_page_init=true'], ['deferred_struct_page_init=true', 'kernel_config=defconfig']]) {
      const p = resolveParams(acceptBoot, { sets });
      expect([p.deferred_struct_page_init, p.nohz_idle]).toEqual([true, true]);
    }
    const c = resolveParams(acceptBoot, { config: { path: 'c.json', values: { thp: 'always' } }, sets: ['kernel_config=defconfig'] });
    expect([c.thp, c.deferred_struct_page_init]).toEqual(['always', false]);
    expect(checkParams(acceptBoot, { kernel_config: 'defconfig', hz: 250 }, 'case').hz).toBe(250);
  });

  it('a sweep cannot put the preset on a grid (bad input naming what it sets)', () => {
    expect(() => parseGrid(acceptBoot, ['kernel_config=distro,defconfig'], new Set())).toThrow(UsageError);
    expect(() => parseGrid(acceptBoot, ['kernel_config=distro,defconfig'], new Set())).toThrow(/deferred_struct_page_init/);
  });

  it('a fuzz reproduction sets a parameter that differs from the preset even when it equals the global default', async () => {
    const p = resolveParams(acceptBoot, { sets: ['kernel_config=defconfig', 'deferred_struct_page_init=true'] });
    const cmd = reproduceCommand(await loadCatalog(), 'accept-boot', p, 3);
    expect(cmd).toContain('--set kernel_config=defconfig');
    expect(cmd).toContain('--set deferred_struct_page_init=true');
    expect(cmd).not.toContain('nohz_idle');
  });
});

describe('accept-throughput with several VMs on one host', () => {
  it('vms=2: both guests accept at once; per-VM metrics as vmN.*, the total over both', () => {
    const p = resolveParams(acceptThroughput, { sets: ['vms=2', 'memory_gib=1', 'vcpus=1', 'firmware_accept_mib=64', 'platform=snp'] }) as unknown as ParamsOf<typeof acceptThroughput.params>;
    const m = acceptThroughput.run(p, new Sim({ seed: 1 })).metrics;
    expect(m['vm1.accept_s']).toBeGreaterThan(0);
    expect(m['vm2.accept_s']).toBeGreaterThan(0);
    expect(m.accept_s).toBeGreaterThanOrEqual(Math.max(m['vm1.accept_s']!, m['vm2.accept_s']!));
    expect(m['vm1.guest.accepted_gib']).toBeCloseTo(m['vm2.guest.accepted_gib']!, 9);
    expect(m['vm1.vmm.setup.psp_commands']).toBeGreaterThan(1024);
    expect(m['vm2.vmm.setup.ns']).toBeGreaterThan(0);
  });
});
