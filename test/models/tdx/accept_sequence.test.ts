import { describe, expect, it } from 'vitest';
import { GiB, MiB, Sim } from '../../../sim/index.ts';
import { TDX_COSTS } from '../../../models/tdx/tdx_costs.ts';
import { KVM_COSTS } from '../../../models/kvm/kvm_costs.ts';
import { HOST_DEFAULTS } from '../../../models/host/host.ts';
import { WriteRate } from '../../../models/arch/write_rate.ts';
import { RecordingObserver, onVcpu0, tdxVm } from '../host/fixture.ts';

function td(sept: '4k' | '2m', gpaBytes = 64 * MiB) {
  const sim = new Sim({ seed: 7 });
  const obs = new RecordingObserver(sim);
  sim.observer = obs;
  const platform = tdxVm(sim, { gpaBytes, vcpus: 1, sept, fidelity: 'per-page' });
  return { sim, obs, platform };
}

/** Op names and their status (for ACCEPT) in order, instants left out. */
function sequence(obs: RecordingObserver): string[] {
  return obs.log.filter((e) => e.kind === 'op').map((e) => {
    if (e.name === 'TDG.MEM.PAGE.ACCEPT') return `ACCEPT(${e.attrs['size'] === 4096 ? '4K' : '2M'})=${e.endAttrs?.['status']}`;
    if (e.name === 'TDH.MEM.SEPT.ADD') return `SEPT.ADD(${e.attrs['page']})`;
    if (e.name === 'TDH.MEM.PAGE.AUG') return `AUG(${e.attrs['size'] === 4096 ? '4K' : '2M'})`;
    return e.name;
  });
}

describe('tdx_accept_memory on 4K-only S-EPT (upstream KVM)', () => {
  it('a 2M accept of an unmapped region: exit with SEPT.ADDs and AUG of the base page, TDX_PAGE_SIZE_MISMATCH, then 512 4K accepts of which 511 exit', () => {
    const { sim, obs, platform } = td('4k');
    onVcpu0(sim, platform, () => platform.arch_accept_memory(0, 2 * MiB, 4 * MiB, 'runtime'));
    platform.checkInvariants();
    const seq = sequence(obs);
    expect(seq.slice(0, 10)).toEqual([
      'ACCEPT(2M)=EPT_VIOLATION',
      'tdx_handle_ept_violation', 'SEPT.ADD(pdpt)', 'SEPT.ADD(pd)', 'SEPT.ADD(pt)', 'AUG(4K)',
      'ACCEPT(2M)=0xc0000b0b00000001', // TDX_PAGE_SIZE_MISMATCH | level 2M
      'ACCEPT(4K)=0x0000000000000000', // the base page, AUGed by the 2M attempt's exit
      'ACCEPT(4K)=EPT_VIOLATION',
      'tdx_handle_ept_violation',
    ]);
    expect(seq.filter((s) => s === 'tdx_handle_ept_violation')).toHaveLength(512);
    expect(seq.filter((s) => s === 'AUG(4K)')).toHaveLength(512);
    expect(seq.filter((s) => s === 'ACCEPT(4K)=0x0000000000000000')).toHaveLength(512);
    const m = platform.metrics();
    expect(m['kvm.exits.EPT_VIOLATION']).toBe(512);
    expect(m['tdx.aug.4k']).toBe(512);
    expect(m['tdx.sept_add']).toBe(3);
    expect(m['tdx.accept.size_mismatch']).toBe(1);
    expect(m['kvm.gmem.bytes_cleared']).toBe(2 * MiB);
    expect(m['tdx.bytes_zeroed']).toBe(2 * MiB + 3 * 4096);
  });

  it('the actors: ACCEPT in the guest, the exit in kvm, AUG and SEPT.ADD in the tdx-module', () => {
    const { sim, obs, platform } = td('4k');
    onVcpu0(sim, platform, () => platform.arch_accept_memory(0, 0, 8192, 'runtime'));
    const actors = new Map(obs.log.filter((e) => e.kind === 'op').map((e) => [e.name, e.actor]));
    expect(actors.get('TDG.MEM.PAGE.ACCEPT')).toBe('guest');
    expect(actors.get('tdx_handle_ept_violation')).toBe('kvm');
    expect(actors.get('TDH.MEM.PAGE.AUG')).toBe('tdx-module');
    expect(actors.get('TDH.MEM.SEPT.ADD')).toBe('tdx-module');
    const aug = obs.log.find((e) => e.name === 'TDH.MEM.PAGE.AUG')!;
    expect(aug.attrs['gpa']).toBe('0x0');
    expect(aug.attrs['size']).toBe(4096);
  });

  it('a steady-state 4K page costs exit + fault + guest_memfd folio and insert + clear + clflush + AUG + entry + TDCALL + zero', () => {
    const { sim, platform } = td('4k');
    let t1 = 0;
    let t2 = 0;
    onVcpu0(sim, platform, function* () {
      yield* platform.arch_accept_memory(0, 0, 4096, 'runtime'); // pays for the S-EPT pages
      t1 = sim.now;
      yield* platform.arch_accept_memory(0, 4096, 8192, 'runtime');
      t2 = sim.now;
    });
    const c = TDX_COSTS;
    const clear = new WriteRate(HOST_DEFAULTS.clearBytesPerSec).nsPer4K;
    const zero = new WriteRate(c.zeroBytesPerSec).nsPer4K;
    const gmem = KVM_COSTS.gmemFolioNs + KVM_COSTS.gmemInsertNs;
    expect(t2 - t1).toBe(c.tdExitNs + KVM_COSTS.faultNs + gmem + clear + c.clflushPageNs + c.seamcallNs + c.augBodyNs + c.tdEntryNs + c.tdcallNs + zero);
    // 1100 + 300 + 550 + 318 + 320 + 300 + 700 + 1100 + 650 + 205 = 5543 ns (2673 ns before issue 11).
    expect(t2 - t1).toBe(5543);
  });

  it('a 1G-aligned range of at least 1 GiB first tries a 1G accept, which the module refuses (TDX_OPERAND_INVALID)', () => {
    const sim = new Sim({ seed: 7 });
    const platform = tdxVm(sim, { gpaBytes: 2 * GiB, vcpus: 1 });
    onVcpu0(sim, platform, () => platform.arch_accept_memory(0, GiB, 2 * GiB, 'runtime'));
    platform.checkInvariants();
    const m = platform.metrics();
    expect(m['tdx.accept.operand_invalid']).toBe(1);
    // One 1G TDCALL, then per 2 MiB region one 2M TDCALL (TDX_PAGE_SIZE_MISMATCH) and 512 4K ones.
    expect(m['tdx.tdcalls']).toBe(1 + 512 * (1 + 512));
    expect(m['tdx.accept.size_mismatch']).toBe(512);
  });
});

describe('tdx_accept_memory with 2M S-EPT mappings (huge-page series)', () => {
  it('a 2M accept of an unmapped region takes one exit, a 2M AUG and a 2 MiB clear, then succeeds and zeroes 2 MiB', () => {
    const { sim, obs, platform } = td('2m');
    onVcpu0(sim, platform, () => platform.arch_accept_memory(0, 2 * MiB, 4 * MiB, 'runtime'));
    platform.checkInvariants();
    expect(sequence(obs)).toEqual([
      'ACCEPT(2M)=EPT_VIOLATION', 'tdx_handle_ept_violation', 'SEPT.ADD(pdpt)', 'SEPT.ADD(pd)', 'AUG(2M)',
      'ACCEPT(2M)=0x0000000000000000',
    ]);
    const m = platform.metrics();
    expect(m['kvm.exits.EPT_VIOLATION']).toBe(1);
    expect(m['tdx.aug.2m']).toBe(1);
    expect(m['tdx.accept.2m']).toBe(1);
    expect(m['kvm.gmem.bytes_cleared']).toBe(2 * MiB);
    expect(m['tdx.bytes_zeroed']).toBe(2 * MiB + 2 * 4096);
  });

  it('a 4K accept maps 4K even then, and a later 2M accept of that region answers TDX_PAGE_SIZE_MISMATCH', () => {
    const { sim, platform } = td('2m');
    onVcpu0(sim, platform, function* () {
      yield* platform.arch_accept_memory(0, 2 * MiB, 2 * MiB + 4096, 'runtime');
      yield* platform.arch_accept_memory(0, 2 * MiB + 4096, 4 * MiB, 'runtime');
    });
    platform.checkInvariants();
    const m = platform.metrics();
    expect(m['tdx.aug.2m']).toBe(0);
    expect(m['tdx.aug.4k']).toBe(512);
    // guest_memfd backs the region with one 2 MiB folio, cleared once.
    expect(m['kvm.gmem.bytes_cleared']).toBe(2 * MiB);
  });
});
