import { describe, expect, it } from 'vitest';
import { MiB, Sim, type Proc } from '../../../sim/index.ts';
import { CONVERSION_COSTS } from '../../../models/kvm/conversion_costs.ts';
import { KVM_COSTS } from '../../../models/kvm/kvm_costs.ts';
import { DIRECT_MAP_COSTS } from '../../../models/host/direct_map.ts';
import { SNP_COSTS } from '../../../models/snp/snp_costs.ts';
import { RecordingObserver, onVcpu0, snpVm, type TestVm, type TestVmOptions } from '../host/fixture.ts';

/**
 * SNP's private mapping at fault time (upstream): the PSC only reaches the VMM, and PVALIDATE of
 * a page not in the NPT takes a nested page fault whose kvm_gmem_get_pfn() clears the folio and
 * runs rmp_make_private(), splitting the host direct map first; the VMM's discard of the shared
 * backing on the way (MMU notifier, mmu_lock for write). Scenario logs of (name, virtual time).
 */

function snp(config: Partial<TestVmOptions> = {}, gpaBytes = 8 * MiB, vcpus = 1) {
  const sim = new Sim({ seed: 4 });
  const obs = new RecordingObserver(sim);
  sim.observer = obs;
  const platform = snpVm(sim, { gpaBytes, vcpus, fidelity: 'per-page', ...config });
  return { sim, obs, platform };
}

/** The ops of the log as (name, start) pairs, in the order they began. */
function ops(obs: RecordingObserver, names: readonly string[]): [string, number][] {
  return obs.log.filter((e) => names.includes(e.name)).map((e) => [e.name, e.at]);
}

function onVcpu(sim: Sim, t: TestVm, vcpu: number, delay: number, body: () => Proc<void>): void {
  sim.spawn((function* (): Proc<void> {
    if (delay > 0) yield sim.sleep(delay);
    yield* body();
  })(), { name: `vcpu${vcpu}`, cpu: t.vcpus[vcpu]!, service: 'guest' });
}

const EXIT = SNP_COSTS.vmExitNs;
const ENTRY = SNP_COSTS.vmEntryNs;
const CLEAR_4K = 318; // 4 KiB at 12.9 GB/s, rounded up to whole ns
const PSC_4K = EXIT + KVM_COSTS.userspaceExitNs + KVM_COSTS.setMemoryAttributesNs + CONVERSION_COSTS.discardBaseNs + 2 * CONVERSION_COSTS.mmuNotifierNs + ENTRY;

describe('a PVALIDATE that faults, and the RMPUPDATE inside the fault', () => {
  it('upstream: the PSC reaches the VMM (its discard fires the MMU notifier), PVALIDATE takes the NPF, which clears the folio, splits the direct map (1G, then 2M, each with flush_tlb_all) and runs RMPUPDATE', () => {
    const { sim, obs, platform } = snp();
    onVcpu0(sim, platform, () => platform.arch_accept_memory(0, 0, 4096, 'runtime'));
    platform.checkInvariants();
    const flush = DIRECT_MAP_COSTS.flushBaseNs + DIRECT_MAP_COSTS.flushPerCpuNs * 1;
    const npf = PSC_4K;
    const rmpupdate = npf + EXIT + KVM_COSTS.faultNs + CLEAR_4K + 2 * (DIRECT_MAP_COSTS.splitNs + flush);
    expect(ops(obs, ['VMGEXIT', 'KVM_HC_MAP_GPA_RANGE', 'kvm_mmu_notifier_invalidate_range_start', 'kvm_mmu_notifier_invalidate_range_end', 'PVALIDATE', 'NPF', 'set_memory_4k', 'flush_tlb_all', 'RMPUPDATE'])).toEqual([
      ['VMGEXIT', 0],
      ['KVM_HC_MAP_GPA_RANGE', EXIT],
      ['kvm_mmu_notifier_invalidate_range_start', EXIT + KVM_COSTS.userspaceExitNs + KVM_COSTS.setMemoryAttributesNs + CONVERSION_COSTS.discardBaseNs],
      ['kvm_mmu_notifier_invalidate_range_end', PSC_4K - ENTRY - CONVERSION_COSTS.mmuNotifierNs],
      ['PVALIDATE', npf],
      ['NPF', npf],
      ['set_memory_4k', npf + EXIT + KVM_COSTS.faultNs + CLEAR_4K],
      ['flush_tlb_all', npf + EXIT + KVM_COSTS.faultNs + CLEAR_4K + DIRECT_MAP_COSTS.splitNs],
      ['flush_tlb_all', npf + EXIT + KVM_COSTS.faultNs + CLEAR_4K + 2 * DIRECT_MAP_COSTS.splitNs + flush],
      ['RMPUPDATE', rmpupdate],
    ]);
    const end = rmpupdate + SNP_COSTS.rmpupdate4kNs + ENTRY + SNP_COSTS.pvalidate4kNs;
    expect(sim.now).toBe(end);
    const npfSpan = obs.log.find((e) => e.name === 'NPF')!;
    const rmp = obs.log.find((e) => e.name === 'RMPUPDATE')!;
    expect(rmp.at >= npfSpan.at && rmp.end! <= npfSpan.end!).toBe(true);
    const m = platform.metrics();
    expect(m['kvm.sev.npf.faults']).toBe(1);
    expect(m['kvm.exits.NPF']).toBe(1);
    expect(m['host.direct_map.splits.1g']).toBe(1);
    expect(m['host.direct_map.splits.2m']).toBe(1);
    expect(m['host.direct_map.tlb_flush_all']).toBe(2);
    expect(m['kvm.mmu_notifier.invalidations']).toBe(1);
    expect(m['kvm.mmu_notifier.write_holds']).toBe(2);
  });

  it('snp_prefault=true (the unmerged QEMU patch): RMPUPDATE inside the PSC exit, PVALIDATE takes no fault', () => {
    const { sim, obs, platform } = snp({ snpPrefault: true });
    onVcpu0(sim, platform, () => platform.arch_accept_memory(0, 0, 4096, 'runtime'));
    platform.checkInvariants();
    const log = ops(obs, ['VMGEXIT', 'RMPUPDATE', 'PVALIDATE', 'NPF']);
    expect(log.map(([n]) => n)).toEqual(['VMGEXIT', 'RMPUPDATE', 'PVALIDATE']);
    const psc = obs.log.find((e) => e.name === 'snp_begin_psc')!;
    const rmp = obs.log.find((e) => e.name === 'RMPUPDATE')!;
    expect(rmp.at >= psc.at && rmp.end! <= psc.end!).toBe(true);
    expect(platform.metrics()['kvm.sev.npf.faults']).toBe(0);
  });

  it('a 2M entry on 4K folios: the 2M PVALIDATE faults its first page, answers SIZEMISMATCH, and each 4K PVALIDATE faults its own page (512 faults); with 2M folios one fault, one 2M RMPUPDATE, no direct-map split', () => {
    const four = snp({ fidelity: 'aggregate' });
    onVcpu0(four.sim, four.platform, () => four.platform.arch_accept_memory(0, 0, 2 * MiB, 'runtime'));
    four.platform.checkInvariants();
    let m = four.platform.metrics();
    expect([m['kvm.sev.npf.faults'], m['kvm.exits.NPF'], m['kvm.sev.pvalidate.size_mismatch'], m['kvm.sev.rmpupdate.4k'], m['host.direct_map.splits.2m']]).toEqual([512, 512, 1, 512, 1]);
    const two = snp({ fidelity: 'aggregate', snpBacking: '2m' });
    onVcpu0(two.sim, two.platform, () => two.platform.arch_accept_memory(0, 0, 2 * MiB, 'runtime'));
    two.platform.checkInvariants();
    m = two.platform.metrics();
    expect([m['kvm.sev.npf.faults'], m['kvm.sev.pvalidate.size_mismatch'], m['kvm.sev.rmpupdate.2m'], m['host.direct_map.splits.2m'], m['host.direct_map.tlb_flush_all']]).toEqual([1, 0, 1, 0, 0]);
  });

  it('the direct map splits once per 2 MiB (and once per 1 GiB); snp_direct_map_split=false leaves it out', () => {
    const on = snp({ fidelity: 'aggregate' });
    onVcpu0(on.sim, on.platform, () => on.platform.arch_accept_memory(0, 0, 8 * MiB, 'runtime'));
    const off = snp({ fidelity: 'aggregate', snpDirectMapSplit: false });
    onVcpu0(off.sim, off.platform, () => off.platform.arch_accept_memory(0, 0, 8 * MiB, 'runtime'));
    const a = on.platform.metrics();
    const b = off.platform.metrics();
    expect([a['host.direct_map.splits.1g'], a['host.direct_map.splits.2m'], a['host.direct_map.tlb_flush_all']]).toEqual([1, 4, 5]);
    expect([b['host.direct_map.splits.1g'], b['host.direct_map.splits.2m'], b['host.direct_map.tlb_flush_all']]).toEqual([0, 0, 0]);
    const flush = DIRECT_MAP_COSTS.flushBaseNs + DIRECT_MAP_COSTS.flushPerCpuNs;
    expect(on.sim.now - off.sim.now).toBe(5 * (DIRECT_MAP_COSTS.splitNs + flush));
  });

  it('two CPUs updating the RMP of one 2 MiB range at once: the second RMPUPDATE answers FAIL_OVERLAP until the first ends', () => {
    // The model packs a guest region's 4K folios into one host 2 MiB block, so two guests' or two
    // regions' faults never share a range; the host kernel's rmpupdate() itself, from two CPUs:
    const { sim, obs, platform } = snp({ snpDirectMapSplit: false }, 8 * MiB, 2);
    const kernel = platform.host.snpKernel!;
    const h = 64 * 512; // a host 2 MiB block no VM uses
    for (const cpu of [0, 1]) {
      sim.spawn((function* (): Proc<void> {
        yield* kernel.rmp_make_private(h + cpu, 1, 1, false, cpu * 4096);
      })(), { name: `cpu${cpu}`, cpu: platform.vcpus[cpu]!, service: 'kvm' });
    }
    sim.run();
    kernel.rmp.checkInvariants();
    const answers = obs.log.filter((e) => e.name === 'RMPUPDATE_FAIL_OVERLAP').map((e) => e.at);
    // Each answer costs a failed attempt (100 ns) until the first update's 600 ns are over.
    const step = SNP_COSTS.rmpupdateFailNs;
    expect(answers).toEqual(Array.from({ length: SNP_COSTS.rmpupdate4kNs / step }, (_, i) => i * step));
    expect(ops(obs, ['RMPUPDATE'])).toEqual([['RMPUPDATE', 0], ['RMPUPDATE', SNP_COSTS.rmpupdate4kNs]]);
    expect(platform.metrics()['host.snp.rmpupdate.fail_overlap']).toBe(6);
  });
});

describe('a conversion to private that waits for mmu_lock held for write by the discard', () => {
  it('vCPU 0 faults a page in while vCPU 1\'s PSC discards the shared backing: its mmu_lock read waits behind invalidate_range_end, and its fault retries (mmu_invalidate_seq moved)', () => {
    // Alone, vCPU 0's NPF reaches mmu_lock at 18528 ns; vCPU 1 starts so that its
    // invalidate_range_end holds mmu_lock for write from 18428 to 18628 ns.
    const { sim, obs, platform } = snp({}, 8 * MiB, 2);
    onVcpu(sim, platform, 0, 0, () => platform.arch_accept_memory(0, 0, 4096, 'runtime'));
    onVcpu(sim, platform, 1, 9978, () => platform.arch_accept_memory(1, 4 * MiB, 4 * MiB + 4096, 'runtime'));
    sim.run();
    platform.checkInvariants();
    expect(ops(obs, ['NPF', 'VMGEXIT', 'RMPUPDATE', 'kvm_mmu_notifier_invalidate_range_start', 'kvm_mmu_notifier_invalidate_range_end', 'RET_PF_RETRY']).slice(3)).toEqual([
      ['NPF', 8900], // vCPU 0: its PVALIDATE's fault
      ['VMGEXIT', 9978], // vCPU 1: its PSC
      ['RMPUPDATE', 17928], // vCPU 0, inside the fault
      ['kvm_mmu_notifier_invalidate_range_start', 18228], // vCPU 1's discard
      ['kvm_mmu_notifier_invalidate_range_end', 18428],
      ['RET_PF_RETRY', 18628], // vCPU 0 got mmu_lock at 18628 (waited 100 ns): stale, retried
      ['NPF', 18878], // vCPU 1's PVALIDATE
      ['RMPUPDATE', 23826],
    ]);
    const m = platform.metrics();
    expect(m['kvm.mmu_lock.waits']).toBe(1);
    expect(m['kvm.mmu_lock.wait_ns']).toBe(100);
    expect(m['kvm.mmu_notifier.faults_delayed']).toBe(1);
    expect(m['kvm.mmu_notifier.faults_retried']).toBe(1);
    // The retry: back into the guest, PVALIDATE again, a second fault that finds the folio prepared.
    const npf0 = obs.log.find((e) => e.name === 'NPF')!;
    expect(npf0.end).toBe(18628 + ENTRY + EXIT + KVM_COSTS.faultNs + ENTRY);
  });

  it('vmm_discard=false: the PSC takes no mmu_lock for write and no fault retries', () => {
    const { sim, platform } = snp({ vmmDiscard: false }, 8 * MiB, 2);
    onVcpu(sim, platform, 0, 0, () => platform.arch_accept_memory(0, 0, 4096, 'runtime'));
    onVcpu(sim, platform, 1, 9828, () => platform.arch_accept_memory(1, 4 * MiB, 4 * MiB + 4096, 'runtime'));
    sim.run();
    const m = platform.metrics();
    expect([m['kvm.mmu_notifier.invalidations'], m['kvm.mmu_notifier.write_holds'], m['kvm.mmu_notifier.faults_retried'], m['kvm.mmu_lock.waits']]).toEqual([0, 0, 0, 0]);
  });
});
