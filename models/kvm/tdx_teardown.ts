import type { Mutex, Proc } from '../../sim/index.ts';
import { kvmGlobalMutex } from './kvm_globals.ts';
import { assert } from '../../sim/assert.ts';
import { writeMemory } from '../arch/write_rate.ts';
import { PAGES_PER_2M, PAGE_SIZE, SIZE_2M, hex } from '../arch/units.ts';
import { TDCS_PAGES, TDR_PAGES, TDVPS_PAGES, TDX_PS_2M, TDX_PS_4K, TDX_SUCCESS, tdxOperandBusy, tdxStatusName, type TdxPageLevel } from '../tdx/arch.ts';
import { tdh_mng_key_freeid } from '../tdx/leaves/tdh_mng_key_freeid.ts';
import { tdh_mng_vpflushdone } from '../tdx/leaves/tdh_mng_vpflushdone.ts';
import { tdh_phymem_cache_wb } from '../tdx/leaves/tdh_phymem_cache_wb.ts';
import { tdh_phymem_page_reclaim, tdh_phymem_page_reclaim_run, type ReclaimKind } from '../tdx/leaves/tdh_phymem_page_reclaim.ts';
import { Region } from '../tdx/secure_ept.ts';
import type { TdxModule } from '../tdx/tdx_module.ts';
import type { Kvm } from './kvm.ts';
import type { KvmTdx } from './tdx.ts';

/** KVM's global `tdx_lock` (kvm_globals.ts), one per host. */
export function tdxLockOf(module: TdxModule): Mutex {
  return kvmGlobalMutex(module.sim, module, 'tdx_lock');
}

/** What one teardown did, for the caller's metrics. */
export interface TdxTeardownResult {
  /** Pages TDH.PHYMEM.PAGE.RECLAIM took back (4K units): private, S-EPT, control. */
  privatePages: number;
  septPages: number;
  controlPages: number;
  /** Host memory the TD held before (its owner's bytes): all back after. */
  ns: number;
}

/**
 * The teardown of a stopped TD on the calling thread (the VMM's last reference to the VM fd:
 * kvm_destroy_vm()), in the order of [linux:arch/x86/kvm/vmx/tdx.c]:
 *
 * 1. tdx_mmu_release_hkid(): each vCPU flushed off the CPU it last ran on (an IPI and
 *    TDH.VP.FLUSH), then under `tdx_lock` TDH.MNG.VPFLUSHDONE, TDH.PHYMEM.CACHE.WB on one CPU
 *    per package (on_each_cpu_mask(..., wait); here one package after another on this CPU) and
 *    TDH.MNG.KEY.FREEID; the HKID is free.
 * 2. The TDP MMU torn down under mmu_lock for write: with the HKID freed,
 *    tdx_sept_remove_private_spte() reclaims each private page (tdx_reclaim_page():
 *    TDH.PHYMEM.PAGE.RECLAIM, then tdx_clear_page(): MOVDIR64B of the page) and
 *    tdx_sept_free_private_spt() each S-EPT page; with Dynamic PAMT each page's tdx_pamt_put()
 *    follows (refcount: 1->0 takes pamt_lock and runs PAMT.REMOVE); S-EPT pages go back to host
 *    memory.
 * 3. tdx_vcpu_free() / tdx_vm_free(): TDCX and TDVPR pages of each vCPU, the TDCS pages, then
 *    the TDR (TDR.CHLDCNT 0), whose reclaim is followed by TDH.PHYMEM.PAGE.WBINVD with the
 *    global key (charged here: `pageWbinvdBodyNs`) and a clear; each page put and freed. The TD
 *    leaves the module.
 * 4. guest_memfd released: its host blocks go back to host memory.
 * 5. policy=lazy: the "can remove" hints RECLAIM returned, acted on now (PAMT.REMOVE of each
 *    range, no lock): the pages are already free, so other TDs may race for the ranges.
 *
 * Aggregated fidelity reclaims the private 4K pages of one 2M range as one step (their
 * SEAMCALLs' time in one stall, one clear of their bytes, one tdx_pamt_put() of all of them);
 * per-page runs each page's RECLAIM, clear and put.
 */
export function* tdx_vm_destroy(kvm: Kvm, vcpus: number, perPage: boolean): Proc<TdxTeardownResult> {
  const tdx = kvm.tdx;
  if (tdx === null) return assert(false, 'tdx_vm_destroy of a VM that is not a TD', kvm.name) as never;
  assert(!tdx.tornDown, 'a TD torn down twice', kvm.name);
  const { module, td } = tdx;
  const sim = module.sim;
  const start = sim.now;
  const traced = sim.observer !== null;
  const id = traced ? sim.opBegin('tdx_vm_destroy', { td: td.name, hkid: td.hkid }, 0, 'kvm') : 0;
  tdx.pamt?.noteTeardown();

  // 1. tdx_mmu_release_hkid()
  for (let i = 0; i < vcpus; i++) yield sim.stallFor(kvm.costs.ipiNs + module.costs.vpFlushNs);
  const lock = tdxLockOf(module);
  yield lock.acquire();
  check(yield* tdh_mng_vpflushdone(td, 0, id), 'TDH.MNG.VPFLUSHDONE', tdx);
  for (let pkg = 0; pkg < module.packages; pkg++) yield* tdh_phymem_cache_wb(module, pkg, id);
  check(yield* tdh_mng_key_freeid(td, id), 'TDH.MNG.KEY.FREEID', tdx);
  lock.release();

  // 2. the private pages and S-EPT pages, under mmu_lock for write
  const hints: number[] = [];
  yield kvm.mmuLock.acquire('exclusive');
  const privatePages = yield* reclaimPrivate(kvm, tdx, perPage, hints, id);
  for (const hpa of tdx.septHpas) yield* reclaimAndFree(tdx, hpa, 'sept', hints, id);
  // The initial image's pages (TDH.MEM.PAGE.ADD, vm_setup=true): children of the TD as private pages.
  for (const hpa of td.image.hpas) yield* reclaimAndFree(tdx, hpa, 'image', hints, id);
  const septPages = tdx.septHpas.length;
  kvm.mmuLock.release('exclusive');

  // 3. control pages: per vCPU its TDCX pages then its TDVPR, then the TDCS pages, then the TDR
  const c = tdx.controlHpas;
  const tdcs = TDCS_PAGES[module.version];
  assert(c.length === TDR_PAGES + tdcs + vcpus * TDVPS_PAGES, 'control pages KVM kept and the TD\'s vCPUs disagree', { td: td.name, pages: c.length, vcpus });
  for (let v = 0; v < vcpus; v++) {
    const first = TDR_PAGES + tdcs + v * TDVPS_PAGES;
    for (let i = TDVPS_PAGES - 1; i >= 0; i--) yield* reclaimAndFree(tdx, c[first + i]!, 'control', hints, id);
  }
  for (let i = 0; i < tdcs; i++) yield* reclaimAndFree(tdx, c[TDR_PAGES + i]!, 'control', hints, id);
  yield* reclaimAndFree(tdx, c[0]!, 'tdr', hints, id);
  module.removeTd(td);

  // 4. guest_memfd's blocks back to host memory
  kvm.gmem.release();
  tdx.tornDown = true;

  // 5. lazy: the hints
  const kernel = tdx.pamt;
  if (kernel !== null && kernel.policy === 'lazy') for (const hpa of hints) yield* kernel.lazyRemoveOnHint(hpa);

  if (traced) sim.opEnd(id, { private_pages: privatePages, sept_pages: septPages, control_pages: c.length });
  return { privatePages, septPages, controlPages: c.length, ns: sim.now - start };
}

/**
 * The private pages of the TD, one guest 2M region at a time: 4K leaves (aggregated: one step
 * per region; per page: each its own) and 2M leaves (one RECLAIM at 2M). Returns the 4K units.
 */
function* reclaimPrivate(kvm: Kvm, tdx: KvmTdx, perPage: boolean, hints: number[], link: number): Proc<number> {
  const { module, td } = tdx;
  const sept = td.sept;
  const gmem = kvm.gmem;
  const kernel = tdx.pamt;
  let pages = 0;
  for (let r = 0; r < gmem.hostBlocks.length; r++) {
    const block = gmem.hostBlocks[r]!;
    if (block < 0) continue;
    const state = sept.regions[r] as Region;
    if (state === Region.LeafPending || state === Region.LeafMapped) {
      yield* reclaimOne(tdx, block * SIZE_2M, TDX_PS_2M, 'child', hints, link);
      pages += PAGES_PER_2M;
      continue;
    }
    const first = r * PAGES_PER_2M;
    const n = Math.min(PAGES_PER_2M, sept.pages - first);
    const hpas: number[] = [];
    for (let p = first; p < first + n; p++) if (sept.aug4k.test(p)) hpas.push(gmem.hostPage(p) * PAGE_SIZE);
    if (hpas.length === 0) continue;
    pages += hpas.length;
    if (perPage) {
      for (const hpa of hpas) {
        yield* reclaimOne(tdx, hpa, TDX_PS_4K, 'child', hints, link);
        if (kernel !== null && kernel.refcounted) yield* kernel.put(hpa, 1);
      }
      continue;
    }
    const sim = module.sim;
    yield sim.stallFor(hpas.length * (module.costs.seamcallNs + module.costs.reclaimBodyNs));
    const result = tdh_phymem_page_reclaim_run(td, hpas);
    check(result.status, 'TDH.PHYMEM.PAGE.RECLAIM', tdx);
    if (sim.observer !== null) sim.opSpan('TDH.PHYMEM.PAGE.RECLAIM', sim.now - hpas.length * (module.costs.seamcallNs + module.costs.reclaimBodyNs), sim.now, { td: td.name, hpa: hex(hpas[0]!), pages: hpas.length, can_remove: result.canRemove }, link);
    if (result.canRemove) hints.push(hpas[0]!);
    yield* writeMemory(td.memory, hpas.length * PAGE_SIZE, module.zeroRate);
    if (kernel !== null && kernel.refcounted) yield* kernel.put(hpas[0]!, hpas.length);
  }
  return pages;
}

/** tdx_reclaim_page() of one page: RECLAIM (retried while BUSY, as __tdx_reclaim_page()), then tdx_clear_page(). */
function* reclaimOne(tdx: KvmTdx, hpa: number, level: TdxPageLevel, kind: ReclaimKind, hints: number[], link: number): Proc<void> {
  const { module, td } = tdx;
  for (;;) {
    const r = yield* tdh_phymem_page_reclaim(td, hpa, level, kind, link);
    if (r.status === TDX_SUCCESS) {
      if (r.canRemove) hints.push(hpa);
      break;
    }
    if (tdxOperandBusy(r.status)) continue;
    check(r.status, 'TDH.PHYMEM.PAGE.RECLAIM', tdx);
  }
  if (kind === 'tdr') yield module.sim.stallFor(module.costs.seamcallNs + module.costs.pageWbinvdBodyNs);
  yield* writeMemory(td.memory, level === TDX_PS_4K ? PAGE_SIZE : SIZE_2M, module.zeroRate);
}

/** An S-EPT or control page: reclaimed, cleared, put (Dynamic PAMT), and freed to host memory. */
function* reclaimAndFree(tdx: KvmTdx, hpa: number, what: 'sept' | 'image' | 'control' | 'tdr', hints: number[], link: number): Proc<void> {
  yield* reclaimOne(tdx, hpa, TDX_PS_4K, what === 'tdr' ? 'tdr' : 'child', hints, link);
  const kernel = tdx.pamt;
  if (kernel !== null && kernel.refcounted) yield* kernel.put(hpa, 1);
  tdx.pages.memory.freePage(hpa, tdx.pages.owner);
}

function check(status: bigint, leaf: string, tdx: KvmTdx): void {
  if (status !== TDX_SUCCESS) assert(false, `KVM_BUG_ON: ${leaf} failed with ${tdxStatusName(status)}`, { td: tdx.td.name });
}
