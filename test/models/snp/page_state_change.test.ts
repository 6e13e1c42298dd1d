import { describe, expect, it } from 'vitest';
import { MiB, Sim, type Proc } from '../../../sim/index.ts';
import { pscRanges } from '../../../models/kvm/snp_psc.ts';
import { GHCB_MSR_PSC_REQ_GFN, SNP_PAGE_STATE_PRIVATE } from '../../../models/snp/arch.ts';
import { RecordingObserver, acceptInParallel, onVcpu0, snpVm, type TestVmOptions } from '../host/fixture.ts';

function snp(config: Partial<TestVmOptions> = {}, gpaBytes = 512 * MiB, vcpus = 1) {
  const sim = new Sim({ seed: 9 });
  const obs = new RecordingObserver(sim);
  sim.observer = obs;
  const platform = snpVm(sim, { gpaBytes, vcpus: vcpus, ...config });
  return { sim, obs, platform };
}

describe('snp_accept_memory through the GHCB: page state change descriptors', () => {
  it('64 entries per VMGEXIT, 2M entries where aligned; one userspace exit per run of adjacent same-size entries', () => {
    const { sim, platform } = snp();
    onVcpu0(sim, platform, () => platform.arch_accept_memory(0, 0, 256 * MiB, 'runtime'));
    platform.checkInvariants();
    const m = platform.metrics();
    expect(m['kvm.exits.VMGEXIT_PSC']).toBe(2); // 128 2M entries / 64
    expect(m['kvm.sev.psc.entries_2m']).toBe(128);
    expect(m['kvm.sev.psc.entries_4k']).toBe(0);
    expect(m['kvm.sev.userspace_exits']).toBe(2);
    // Upstream guest_memfd folios are 4K: every RMP entry is 4K, so each 2M PVALIDATE answers
    // SIZEMISMATCH and falls back to 512 4K PVALIDATEs.
    expect(m['kvm.sev.rmpupdate.4k']).toBe(65536);
    expect(m['kvm.sev.pvalidate.size_mismatch']).toBe(128);
    expect(m['kvm.sev.pvalidate.4k']).toBe(65536);
    expect(m['kvm.gmem.bytes_cleared']).toBe(256 * MiB);
  });

  it('with 2M folios the hypervisor makes 2M RMP entries and the 2M PVALIDATEs succeed', () => {
    const { sim, platform } = snp({ snpBacking: '2m' });
    onVcpu0(sim, platform, () => platform.arch_accept_memory(0, 0, 256 * MiB, 'runtime'));
    platform.checkInvariants();
    const m = platform.metrics();
    expect(m['kvm.sev.rmpupdate.2m']).toBe(128);
    expect(m['kvm.sev.rmpupdate.4k']).toBe(0);
    expect(m['kvm.sev.pvalidate.2m']).toBe(128);
    expect(m['kvm.sev.pvalidate.size_mismatch']).toBe(0);
  });

  it('an unaligned range gets 4K entries up to the first 2M boundary, a 2M entry, then 4K entries', () => {
    const { sim, platform } = snp();
    onVcpu0(sim, platform, () => platform.arch_accept_memory(0, 4096, 4 * MiB + 8192, 'runtime'));
    platform.checkInvariants();
    const m = platform.metrics();
    expect(m['kvm.sev.psc.entries_4k']).toBe(511 + 2);
    expect(m['kvm.sev.psc.entries_2m']).toBe(1);
    expect(m['kvm.exits.VMGEXIT_PSC']).toBe(9); // 514 entries in descriptors of 64
    // Descriptors 1-7: one 4K run each; descriptor 8: 63 4K entries then the 2M one (two runs); 9: one run.
    expect(m['kvm.sev.userspace_exits']).toBe(10);
  });

  it('the spec maximum of 253 entries per descriptor needs fewer VMGEXITs', () => {
    const { sim, platform } = snp({ pscMaxEntries: 253 });
    onVcpu0(sim, platform, () => platform.arch_accept_memory(0, 0, 512 * MiB, 'runtime'));
    expect(platform.metrics()['kvm.exits.VMGEXIT_PSC']).toBe(2); // 256 entries: 253 + 3
  });

  it('snp_begin_psc coalesces adjacent entries of one page size', () => {
    expect(pscRanges([{ page: 0, huge: true }, { page: 512, huge: true }, { page: 1024, huge: false }, { page: 1025, huge: false }, { page: 2048, huge: false }]))
      .toEqual([{ first: 0, pages: 1024, huge: true }, { first: 1024, pages: 2, huge: false }, { first: 2048, pages: 1, huge: false }]);
  });

  it('the spans: VMGEXIT and PVALIDATE in the guest, snp_begin_psc in kvm, the exit to userspace in the vmm, RMPUPDATE in the firmware', () => {
    const { sim, obs, platform } = snp({ fidelity: 'per-page' });
    onVcpu0(sim, platform, () => platform.arch_accept_memory(0, 0, 2 * MiB, 'runtime'));
    const ops = obs.log.filter((e) => e.kind === 'op');
    const actor = (name: string) => ops.find((e) => e.name === name)!.actor;
    expect(actor('VMGEXIT')).toBe('guest');
    expect(actor('snp_begin_psc')).toBe('kvm');
    expect(actor('KVM_HC_MAP_GPA_RANGE')).toBe('vmm/vm1');
    expect(actor('RMPUPDATE')).toBe('snp-firmware');
    expect(actor('PVALIDATE')).toBe('guest');
    expect(ops.filter((e) => e.name === 'RMPUPDATE')).toHaveLength(512);
    expect(obs.log.filter((e) => e.name === 'PVALIDATE_FAIL_SIZEMISMATCH')).toHaveLength(1);
  });
});

describe('the GHCB MSR protocol: one 4K page per VMGEXIT', () => {
  it.each([
    ['early phase', 'early', {}],
    ['psc=msr at runtime', 'runtime', { psc: 'msr' }],
  ] as const)('%s: 16 KiB takes four VMGEXITs, four exits to the VMM, four 4K PVALIDATEs', (_name, phase, config) => {
    const { sim, platform } = snp(config as Partial<TestVmOptions>);
    onVcpu0(sim, platform, () => platform.arch_accept_memory(0, 2 * MiB, 2 * MiB + 16384, phase));
    platform.checkInvariants();
    const m = platform.metrics();
    expect(m['kvm.exits.VMGEXIT_MSR_PSC']).toBe(4);
    expect(m['kvm.exits.VMGEXIT_PSC']).toBeUndefined();
    expect(m['kvm.sev.userspace_exits']).toBe(4);
    expect(m['kvm.sev.pvalidate.4k']).toBe(4);
    expect(m['kvm.sev.rmpupdate.4k']).toBe(4);
  });

  it('GHCB_MSR_PSC_REQ_GFN encodes op, gfn and request code as the GHCB spec lays them out', () => {
    expect(GHCB_MSR_PSC_REQ_GFN(0x12345, SNP_PAGE_STATE_PRIVATE)).toBe(0x0010000012345014n);
  });

  it('every MSR-protocol exit goes to the VMM and its attribute update takes kvm->slots_lock: vCPUs queue on it', () => {
    const { sim, platform } = snp({ psc: 'msr' }, 8 * MiB, 4);
    acceptInParallel(sim, platform, 8 * MiB, 64 * 1024);
    expect(platform.metrics()['kvm.slots_lock.waits']).toBeGreaterThan(0);
  });
});

describe('PVALIDATE of a validated page is fatal for the guest', () => {
  it.each(['aggregate', 'per-page'] as const)('%s: accepting a page twice terminates with the address', (fidelity) => {
    const { sim, platform } = snp({ fidelity });
    expect(() => onVcpu0(sim, platform, function* (): Proc<void> {
      yield* platform.arch_accept_memory(0, 0, 4 * MiB, 'runtime');
      yield* platform.arch_accept_memory(0, 3 * MiB, 3 * MiB + 4096, 'early');
    })).toThrow(/PVALIDATE\(0x0*300000, validate\) of a validated page: PVALIDATE_FAIL_NOUPDATE \(255\)/);
  });
});

describe('aggregated and per-page SNP paths agree when uncontended', () => {
  // Lock acquisitions count steps, not work; the time-weighted mean of host memory in use
  // depends on when inside a step its folios are taken.
  const STEP_DEPENDENT = /mmu_lock\.acquisitions|cpa_lock\.acquisitions|used_bytes_mean/;
  it.each([
    ['upstream: PVALIDATE faults the pages in', { snpPrefault: false }],
    ['the VMM prefaults on PSC', { snpPrefault: true }],
    ['upstream with 2M folios', { snpPrefault: false, snpBacking: '2m' }],
    ['upstream without direct-map splits or the discard', { snpPrefault: false, snpDirectMapSplit: false, vmmDiscard: false }],
  ] as const)('%s: same end time and counts', (_name, extra) => {
    const run = (fidelity: 'aggregate' | 'per-page') => {
      const { sim, platform } = snp({ fidelity, ...(extra as Partial<TestVmOptions>) });
      onVcpu0(sim, platform, function* (): Proc<void> {
        yield* platform.arch_accept_memory(0, 4096, 6 * MiB, 'runtime');
        yield* platform.arch_accept_memory(0, 8 * MiB, 9 * MiB, 'early');
      });
      platform.checkInvariants();
      const m = Object.fromEntries(Object.entries(platform.metrics()).filter(([k]) => !STEP_DEPENDENT.test(k)));
      return { end: sim.now, m };
    };
    const a = run('aggregate');
    const p = run('per-page');
    expect(a.end).toBe(p.end);
    expect(a.m).toEqual(p.m);
  });
});

describe('the host side SNP shares with TDX (models/host/host_platform.ts)', () => {
  it('a bad host configuration value names the field', () => {
    const sim = new Sim({ seed: 1 });
    expect(() => snpVm(sim, { gpaBytes: 8 * MiB, vcpus: 1, cpus: 0 })).toThrow(/host_cpus must be an integer/);
    expect(() => snpVm(sim, { gpaBytes: 8 * MiB, vcpus: 1, kvmCosts: { hltNs: -1 } })).toThrow(/kvmCosts\.hltNs/);
    expect(() => snpVm(sim, { gpaBytes: 8 * MiB, vcpus: 1, memoryBandwidthBytesPerSec: 0 })).toThrow(/memoryBandwidthBytesPerSec must be a positive/);
  });

  it('a host CPU still held by a running vCPU when the run is cut short fails the invariants', () => {
    const { sim, platform } = snp({}, 8 * MiB);
    sim.spawn((function* () {
      yield sim.compute(1_000_000);
    })(), { name: 'vcpu0', cpu: platform.vcpus[0]!, service: 'guest' });
    sim.run({ until: 500_000 });
    expect(() => platform.checkInvariants()).toThrow(/host CPUs still held or waited for/);
  });
});
