import { describe, expect, it } from 'vitest';
import { GiB, MiB, Sim, type Proc } from '../../../sim/index.ts';
import { Host, pamtReserves } from '../../../models/host/host.ts';
import type { PamtPolicy } from '../../../models/host/tdx_pamt.ts';
import { Vm } from '../../../models/vm/vm.ts';
import type { AcceptFidelity } from '../../../models/vm/fidelity.ts';
import { finishHost } from '../../../experiments/wiring.ts';
import { RecordingObserver } from '../host/fixture.ts';

/** `vms` bare TDs accept `bytes` each on `vcpus` vCPUs, then stop one after another (or at once). */
function runAndStop(pamt: PamtPolicy, fidelity: AcceptFidelity, { vms = 2, vcpus = 2, bytes = 8 * MiB, traced = false, stop = [0, 1] as number[] } = {}) {
  const sim = new Sim({ seed: 5 });
  const obs = traced ? new RecordingObserver(sim) : null;
  sim.observer = obs;
  const host = new Host(sim, { technology: 'tdx', cpus: vms * vcpus, memoryBytes: 2 * GiB, pamt });
  const tds = Array.from({ length: vms }, () => new Vm(sim, host, { bare: { vcpus, gpaBytes: bytes }, fidelity }));
  const used = { before: 0 };
  for (const vm of tds) {
    const per = bytes / vcpus;
    const done = vm.vcpus.map((cpu, i) => sim.spawn((function* (): Proc<void> {
      sim.localIrqDisable();
      for (let a = i * per; a < (i + 1) * per; a += 2 * MiB) yield* vm.arch_accept_memory(i, a, Math.min(a + 2 * MiB, (i + 1) * per), 'runtime');
      sim.localIrqEnable();
    })(), { name: `${vm.name}/guest${i}`, cpu, service: 'guest' }));
    if (!stop.includes(vm.record.id - 1)) continue;
    sim.spawn((function* (): Proc<void> {
      for (const d of done) yield d.join();
      used.before = Math.max(used.before, host.memory.usedBytesBy(vm.record.owner));
      yield* vm.shutdown();
    })(), { name: `${vm.name}/vmm`, cpu: vm.vcpus[0]!, service: `vmm/${vm.name}` });
  }
  sim.run();
  const m = finishHost(host, tds);
  return { sim, host, tds, m, used, log: obs?.log ?? [] };
}

describe('TD teardown on a shared host', () => {
  it('scenario: VP.FLUSH, VPFLUSHDONE, CACHE.WB, KEY.FREEID, then RECLAIM of private, S-EPT and control pages; the TDR last', () => {
    const { log, m } = runAndStop('refcount', 'per-page', { vms: 1, vcpus: 1, bytes: 2 * MiB, traced: true, stop: [0] });
    const names = log.filter((e) => e.kind === 'op' && e.actor === 'tdx-module' && /^TDH\.(MNG|PHYMEM\.(CACHE|PAGE))/.test(e.name)).map((e) => [e.name, e.at] as const);
    const first = (n: string) => names.findIndex(([x]) => x === n);
    expect(first('TDH.MNG.VPFLUSHDONE')).toBe(0);
    expect(names[1]![0]).toBe('TDH.PHYMEM.CACHE.WB');
    expect(names[2]![0]).toBe('TDH.MNG.KEY.FREEID');
    // One RECLAIM per page the TD held: 512 private 4K pages, its S-EPT pages, 1 + 6 + 6 control pages.
    const reclaims = names.filter(([x]) => x === 'TDH.PHYMEM.PAGE.RECLAIM');
    expect(reclaims.length).toBe(512 + m['vm1.tdx.sept_add']! + 13);
    // Virtual times: FREEID after CACHE.WB's 500 us, every RECLAIM after FREEID, in order.
    expect(names[2]![1] - names[1]![1]).toBeGreaterThanOrEqual(500_000);
    for (let i = 1; i < reclaims.length; i++) expect(reclaims[i]![1]).toBeGreaterThan(reclaims[i - 1]![1]);
    const tdr = log.filter((e) => e.name === 'TDH.PHYMEM.PAGE.RECLAIM').at(-1)!;
    expect(tdr.attrs['hpa']).toBeDefined();
    expect(m['tdx.tds_torn_down']).toBe(1);
    expect(m['tdx.pamt.td_pages']).toBe(0);
  });

  for (const fidelity of ['aggregate', 'per-page'] as const) {
    it(`refcount (${fidelity}): after both TDs stop every refcount is 0 and PAMT.REMOVE ran once per pair`, () => {
      const { m, host } = runAndStop('refcount', fidelity);
      expect(m['tdx.pamt.pairs_added']).toBeGreaterThan(0);
      expect(m['tdx.pamt.pairs_removed']).toBe(m['tdx.pamt.pairs_added']);
      expect(m['host.tdx_pamt.puts_to_zero']).toBe(m['tdx.pamt.pairs_removed']);
      expect(m['host.tdx_pamt.puts']).toBe(m['host.tdx_pamt.gets']);
      expect(host.tdxPamt!.refcounts.every((c) => c === 0)).toBe(true);
      expect(m['host.tdx_pamt.idle_pairs']).toBe(0);
      expect(m['tdx.pamt.dynamic_bytes']).toBe(0);
      // Of the kernel's PAMT pages only the per-vCPU caches are left (the module's static part stays).
      expect(m['host.memory.by_owner.tdx-pamt.bytes'] ?? 0).toBe(m['host.tdx_pamt.cached_pages']! * 4096);
      expect(m['host.memory.by_kind.pamt.bytes']).toBe(m['host.tdx_pamt.cached_pages']! * 4096 + m['host.memory.by_owner.tdx-module.bytes']!);
      expect(m['host.memory.by_owner.vm1.bytes'] ?? 0).toBe(0);
    });
  }

  it('lazy: every "can remove" hint is acted on; with nothing racing each REMOVE takes its pair', () => {
    const { m } = runAndStop('lazy', 'aggregate');
    expect(m['host.tdx_pamt.lazy_hints']).toBe(m['tdx.pamt.pairs_added']);
    expect(m['host.tdx_pamt.lazy_removes']).toBe(m['tdx.pamt.pairs_added']);
    expect(m['host.tdx_pamt.idle_pairs']).toBe(0);
  });

  it('static: teardown reclaims every page with no pair and no put', () => {
    const { m, host } = runAndStop('static', 'aggregate');
    expect(m['tdx.pamt.td_pages']).toBe(0);
    expect(m['tdx.tds_torn_down']).toBe(2);
    // All that is left is the PAMT the module took at initialisation.
    expect(m['host.memory.used_bytes']).toBe(pamtReserves(host.config).reduce((a, b) => a + b, 0));
    expect(m['host.memory.by_owner.tdx-module.bytes']).toBe(m['host.memory.used_bytes']);
  });

  it('one TD stops while the other keeps its pages: the survivor\'s refcounts and pairs stay', () => {
    const { m, tds } = runAndStop('refcount', 'aggregate', { stop: [0] });
    expect(m['tdx.tds_torn_down']).toBe(1);
    expect(m['tdx.pamt.td_pages']).toBeGreaterThan(4096 / 2);
    expect(m['host.memory.by_owner.vm1.bytes'] ?? 0).toBe(0);
    expect(m['host.memory.by_owner.vm2.bytes']).toBeGreaterThan(8 * MiB);
    expect(tds[1]!.kvm.tdx!.tornDown).toBe(false);
  });
});
