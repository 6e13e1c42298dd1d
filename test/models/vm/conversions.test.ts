import { describe, expect, it } from 'vitest';
import { GiB, MiB, Sim, type Proc } from '../../../sim/index.ts';
import { Host } from '../../../models/host/host.ts';
import { Vm } from '../../../models/vm/vm.ts';
import { GuestMemEncrypt } from '../../../models/guest/set_memory.ts';
import { checkConversionAgreement } from '../../../models/vm/conversion_check.ts';
import { convert } from '../../../experiments/convert.ts';
import { defaultsOf } from '../../../experiments/experiment.ts';

const SIZE_2M = 2 * MiB;

/** One vCPU, 64 MiB guest: accept the first 4 MiB, convert `bytes` at 2 MiB to shared and back, logging (step, virtual time). */
function scenario(technology: 'tdx' | 'snp', bytes: number, touchShared = true): { log: [string, number][]; vm: Vm; enc: GuestMemEncrypt } {
  const sim = new Sim({ seed: 1 });
  const host = new Host(sim, { technology, cpus: 1, memoryBytes: 2 * GiB });
  const vm = new Vm(sim, host, { bare: { vcpus: 1, gpaBytes: 64 * MiB } });
  vm.enableConversions('anon', 0);
  const enc = new GuestMemEncrypt(sim, vm, vm.kind, 64 * MiB);
  const log: [string, number][] = [];
  sim.spawn((function* (): Proc<void> {
    yield* vm.arch_accept_memory(0, 0, 4 * MiB, 'runtime');
    log.push(['accepted', sim.now]);
    yield* enc.set_memory_decrypted(0, SIZE_2M, bytes);
    log.push(['decrypted', sim.now]);
    if (touchShared) yield* vm.touch(0, SIZE_2M, SIZE_2M + bytes, true);
    log.push(['touched shared', sim.now]);
    yield* enc.set_memory_encrypted(0, SIZE_2M, bytes);
    log.push(['encrypted', sim.now]);
    yield* vm.touch(0, SIZE_2M, SIZE_2M + bytes, false);
  })(), { name: 'vm1/test', cpu: vm.vcpus[0]! });
  sim.run();
  sim.finishRun();
  checkConversionAgreement(vm, enc);
  vm.checkInvariants();
  host.checkInvariants();
  return { log, vm, enc };
}

describe('private/shared conversions, one 4K and one 2M, TDX and SNP', () => {
  it.each([
    ['tdx', 4096, 1, 1],
    ['tdx', SIZE_2M, 1, 512],
    ['snp', 4096, 1, 1],
    ['snp', SIZE_2M, 1, 512],
  ] as const)('%s, %i bytes: one exit to the VMM each way, the pages removed and re-accepted', (tech, bytes, exitsEachWay, pages) => {
    const { log, vm, enc } = scenario(tech, bytes);
    const out: Record<string, number> = {};
    vm.metrics('vm1', out);
    expect(log.map(([n]) => n)).toEqual(['accepted', 'decrypted', 'touched shared', 'encrypted']);
    expect(log.every(([, t], i) => i === 0 || t > log[i - 1]![1])).toBe(true);
    expect(out['vm1.vmm.convert.to_shared']).toBe(exitsEachWay);
    // On SNP the acceptance itself is a PSC to private through the VMM (one exit for the 4 MiB).
    expect(out['vm1.vmm.convert.to_private']).toBe(exitsEachWay + (tech === 'snp' ? 1 : 0));
    expect(out['vm1.kvm.gmem.folios_freed']).toBe(pages);
    if (tech === 'tdx') {
      expect(out['vm1.tdx.remove.block']).toBe(pages);
      expect(out['vm1.tdx.remove.track']).toBe(pages);
      expect(out['vm1.tdx.remove.page_remove']).toBe(pages);
      expect(out['vm1.tdx.remove.wbinvd']).toBe(pages);
    } else {
      expect(out['vm1.kvm.sev.pvalidate.rescinded']).toBe(pages);
      expect(out['vm1.kvm.sev.rmpupdate.shared']).toBe(pages);
    }
    expect(enc.counters.warnNon2m).toBe(bytes === 4096 ? 2 : 0);
    // The scenario's virtual times, for the record (deterministic).
    expect(log).toMatchSnapshot();
  });

  it('a 4K conversion leaves its 2 MiB range mixed, so shared faults there map at 4K only', () => {
    const { vm } = scenario('tdx', 4096);
    const out: Record<string, number> = {};
    vm.metrics('vm1', out);
    expect(out['vm1.kvm.attr.mixed_2m_regions_peak']).toBe(1);
    expect(out['vm1.kvm.attr.mixed_2m_regions']).toBe(0);
    expect(out['vm1.kvm.attr.shared_faults.4k']).toBe(1);
  });
});

describe('double allocation: hugetlb keeps the shared page after conversion back, anon frees it', () => {
  it.each([['anon', false], ['hugetlb2m', true]] as const)('%s', (backing, doubled) => {
    const p = { ...defaultsOf(convert.params), memory_gib: 1, arena_mib: 64, duration_ms: 20, io_mib_per_s: 50, shared_backing: backing };
    const r = convert.run(p, new Sim({ seed: 1 })).metrics;
    expect(r['double_bytes_end']! > 0).toBe(doubled);
    expect(r['vm1.vmm.shared.discard_skipped_pages']! > 0).toBe(doubled);
  });
});

describe('invariant violations are caught', () => {
  it('a private page accessed as shared', () => {
    const sim = new Sim({ seed: 1 });
    const host = new Host(sim, { technology: 'tdx', cpus: 1, memoryBytes: 2 * GiB });
    const vm = new Vm(sim, host, { bare: { vcpus: 1, gpaBytes: 64 * MiB } });
    vm.enableConversions('anon', 0);
    sim.spawn((function* (): Proc<void> {
      yield* vm.arch_accept_memory(0, 0, SIZE_2M, 'runtime');
      yield* vm.touch(0, 0, 4096, true);
    })(), { name: 'vm1/test', cpu: vm.vcpus[0]! });
    expect(() => sim.run()).toThrow(/accessed private memory as shared/);
  });

  it('a private page used after a round trip without its re-accept', () => {
    const sim = new Sim({ seed: 1 });
    const host = new Host(sim, { technology: 'tdx', cpus: 1, memoryBytes: 2 * GiB });
    const vm = new Vm(sim, host, { bare: { vcpus: 1, gpaBytes: 64 * MiB } });
    vm.enableConversions('anon', 0);
    const attrs = vm.kvm.attrs!;
    sim.spawn((function* (): Proc<void> {
      yield* vm.arch_accept_memory(0, 0, SIZE_2M, 'runtime');
      // MapGPA to shared and back, as a guest that forgets tdx_accept_memory() would.
      yield* vm.vmm.map_gpa_range(0, 1, false, 0);
      yield* vm.vmm.map_gpa_range(0, 1, true, 0);
      attrs.checkAccess(0, 1, true);
    })(), { name: 'vm1/test', cpu: vm.vcpus[0]! });
    expect(() => sim.run()).toThrow(/used before it was accepted/);
  });

  it('guest page tables and KVM attributes that disagree', () => {
    const { vm, enc } = scenario('snp', 4096);
    enc.shared[100] = 1;
    expect(() => checkConversionAgreement(vm, enc)).toThrow(/disagree/);
  });
});
