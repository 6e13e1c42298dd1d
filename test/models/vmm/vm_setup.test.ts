import { describe, expect, it } from 'vitest';
import { MiB, Sim } from '../../../sim/index.ts';
import { TDX_OP_STATE_INCORRECT } from '../../../models/tdx/arch.ts';
import { tdh_mem_page_add } from '../../../models/tdx/leaves/tdh_mem_page_add.ts';
import { TD_BUILD_COSTS } from '../../../models/tdx/td_build_costs.ts';
import { Vm } from '../../../models/vm/vm.ts';
import { RecordingObserver, snpVm, tdxVm } from '../host/fixture.ts';

/** The ops of a log with consecutive repeats folded: [name, first start ns, count]. */
function folded(log: RecordingObserver['log']): [string, number, number][] {
  const out: [string, number, number][] = [];
  for (const e of log) {
    if (e.kind !== 'op') continue;
    const last = out[out.length - 1];
    if (last !== undefined && last[0] === e.name) last[2]++;
    else out.push([e.name, e.at, 1]);
  }
  return out;
}

describe('VM setup before the firmware runs (models/vmm/vm_setup.ts)', () => {
  it('a TD: memslots and attributes, then the build SEAMCALLs in KVM\'s order, the image added and measured, TDH.MR.FINALIZE', () => {
    const sim = new Sim({ seed: 1 });
    const obs = new RecordingObserver(sim);
    sim.observer = obs;
    const t = tdxVm(sim, { gpaBytes: 64 * MiB, vcpus: 2, setup: true, fidelity: 'per-page' });
    const setup = t.vm.startSetup()!;
    expect(t.td.opState).toBe('initialized');
    sim.run();
    expect(setup.state).toBe('done');
    const log = folded(obs.log);
    // Up to the image: every op with its start time.
    expect(log.slice(0, 18)).toEqual([
      ['vm_setup', 0, 1],
      ['KVM_SET_USER_MEMORY_REGION2', 0, 1],
      ['KVM_SET_MEMORY_ATTRIBUTES', 40_000, 1], // 64 MiB: 16384 xa_stores
      ['KVM_SET_USER_MEMORY_REGION2', 1_690_010, 1], // the 4 MiB flash below 4 GiB
      ['KVM_SET_MEMORY_ATTRIBUTES', 1_730_010, 1],
      ['KVM_TDX_INIT_VM', 1_842_520, 1],
      ['TDH.MNG.CREATE', 1_842_520, 1],
      ['TDH.MNG.KEY.CONFIG', 1_843_520, 1],
      ['TDH.MNG.ADDCX', 1_865_820, 6],
      ['TDH.MNG.INIT', 1_873_050, 1],
      ['TDH.VP.CREATE', 1_893_350, 1],
      ['TDH.VP.ADDCX', 1_894_555, 5],
      ['TDH.VP.INIT', 1_900_580, 1],
      ['TDH.VP.CREATE', 1_905_880, 1],
      ['TDH.VP.ADDCX', 1_907_085, 5],
      ['TDH.VP.INIT', 1_913_110, 1],
      ['KVM_TDX_INIT_MEM_REGION', 1_918_410, 1],
      ['TDH.MEM.PAGE.ADD', 1_920_410, 1],
    ]);
    // Per measured page: PAGE.ADD then 16 MR.EXTENDs of 256 bytes; the CFV pages are added only.
    expect(log[18]).toEqual(['TDH.MR.EXTEND', expect.any(Number), 16]);
    expect(log[log.length - 1]![0]).toBe('TDH.MR.FINALIZE');
    const m = t.metrics();
    expect(m['vmm.setup.attr_stores']).toBe((64 * MiB + 4 * MiB) / 4096);
    expect(m['vmm.setup.image_pages']).toBe(1024);
    expect(m['vmm.setup.measure_ops']).toBe(0x37c000 / 256);
    expect(m['vmm.setup.ns']).toBe(sim.now);
    expect(t.td.opState).toBe('runnable');
    expect(t.td.image.pagesAdded).toBe(1024);
    // After TDH.MR.FINALIZE the image is fixed: PAGE.ADD answers TDX_OP_STATE_INCORRECT.
    let late = 0n;
    sim.spawn((function* () { late = yield* tdh_mem_page_add(t.td, TD_BUILD_COSTS, t.vm.kvm.tdx!.controlHpas[0]!, 0, t.td.image.hpas[0]!, 0); })(), { name: 'late', cpu: t.vm.vcpus[0]!, service: 'vmm/vm1' });
    sim.run();
    expect(late).toBe(TDX_OP_STATE_INCORRECT);
    t.checkInvariants();
  });

  it('aggregated (a page\'s 16 TDH.MR.EXTENDs as one step) and per-page builds take the same time and do the same', () => {
    const run = (fidelity: 'aggregate' | 'per-page') => {
      const sim = new Sim({ seed: 1 });
      const t = tdxVm(sim, { gpaBytes: 16 * MiB, vcpus: 1, setup: true, fidelity });
      t.vm.startSetup();
      sim.run();
      const m = t.metrics();
      return [m['vmm.setup.ns'], m['vmm.setup.seamcalls'], m['vmm.setup.measure_ops'], m['tdx.bytes_zeroed'], m['tdx.pamt.walks']];
    };
    const agg = run('aggregate');
    const per = run('per-page');
    expect(agg.slice(0, 4)).toEqual(per.slice(0, 4));
  });

  it('the TD\'s teardown reclaims the image pages with the rest', () => {
    const sim = new Sim({ seed: 1 });
    const t = tdxVm(sim, { gpaBytes: 16 * MiB, vcpus: 1, setup: true });
    const setup = t.vm.startSetup()!;
    sim.spawn((function* () { yield setup.join(); yield* t.vm.shutdown(); })(), { name: 'vm1/vmm', cpu: t.vm.vcpus[0]!, service: 'vmm/vm1' });
    sim.run();
    t.checkInvariants();
    expect(t.host.memory.usedBytesBy(t.vm.record.owner)).toBe(0);
  });

  it('the attribute stores, and with them the setup time, grow with memory: 100 ns per 4K and 50 ns per 2M more', () => {
    const run = (gpaBytes: number) => {
      const sim = new Sim({ seed: 1 });
      const t = tdxVm(sim, { gpaBytes, vcpus: 1, setup: true });
      t.vm.startSetup();
      sim.run();
      return t.metrics();
    };
    const small = run(64 * MiB);
    const large = run(256 * MiB);
    const pages = (256 - 64) * MiB / 4096;
    expect(large['vmm.setup.attr_stores']! - small['vmm.setup.attr_stores']!).toBe(pages);
    expect(large['vmm.setup.ns']! - small['vmm.setup.ns']!).toBe(pages * 100 + (pages / 512) * 50);
  });

  it('SNP: two guests launching together take turns at the PSP (sev_cmd_mutex)', () => {
    const alone = (() => {
      const sim = new Sim({ seed: 1 });
      const t = snpVm(sim, { gpaBytes: 16 * MiB, vcpus: 1, setup: true });
      t.vm.startSetup();
      sim.run();
      return t.metrics();
    })();
    expect(alone['vmm.setup.psp_commands']).toBe(1 + 1024 + 1 + 1);
    expect(alone['vmm.setup.image_pages']).toBe(1024);
    // A second VM on the same host: both launch at 0 and share the one PSP.
    const sim = new Sim({ seed: 1 });
    const t = snpVm(sim, { gpaBytes: 16 * MiB, vcpus: 1, setup: true, cpus: 4, memoryBytes: 512 * MiB });
    const other = new Vm(sim, t.host, { bare: { vcpus: 1, gpaBytes: 16 * MiB }, setup: true });
    t.vm.startSetup();
    other.startSetup();
    sim.run();
    const both = t.metrics()['vmm.setup.ns']!;
    expect(both).toBeGreaterThan(alone['vmm.setup.ns']! + 1024 * 10_000);
    t.checkInvariants();
  });
});
