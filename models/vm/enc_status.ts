import type { Proc } from '../../sim/index.ts';
import { assert } from '../../sim/assert.ts';
import { PAGES_PER_2M, hex } from '../arch/units.ts';
import type { Kvm } from '../kvm/kvm.ts';
import { snp_vmgexit_psc_shared } from '../kvm/snp_psc_shared.ts';
import { TDVMCALL_STATUS_RETRY, TDVMCALL_STATUS_SUCCESS, tdx_map_gpa } from '../kvm/tdx_map_gpa.ts';
import { PVALIDATE_FAIL_SIZEMISMATCH } from '../snp/arch.ts';
import { pscDescriptors, snp_accept_memory, type SnpGuestAccept } from './snp_accept_memory.ts';
import { tdx_accept_memory, type TdxGuestAccept } from './tdx_accept_memory.ts';

/** What the guest's side of conversions counted (`vm1.guest.enc`). */
export interface EncStatusCounters {
  mapGpaCalls: number;
  mapGpaRetries: number;
}

/**
 * tdx_enc_status_changed() ([linux:arch/x86/coco/tdx/tdx.c tdx_enc_status_changed]) on the
 * calling vCPU: tdx_map_gpa(), TDG.VP.VMCALL<MapGPA> with the shared bit set for shared,
 * re-issued from R11 after TDVMCALL_STATUS_RETRY (at most 3 tries without progress); then, to
 * private, tdx_accept_memory() of the range (the pages come back zeroed: a re-accept).
 */
export function* tdx_enc_status_changed(kvm: Kvm, accept: TdxGuestAccept, counters: EncStatusCounters, start: number, end: number, enc: boolean, timerPeriodNs: number): Proc<boolean> {
  let from = start;
  let retries = 0;
  while (retries < 3) {
    counters.mapGpaCalls++;
    const answer = yield* tdx_map_gpa(kvm, from, end - from, !enc, timerPeriodNs, 0);
    if (answer.status === TDVMCALL_STATUS_SUCCESS) break;
    if (answer.status !== TDVMCALL_STATUS_RETRY) return false;
    counters.mapGpaRetries++;
    if (answer.next < from || answer.next >= end) return false;
    if (answer.next === from) retries++;
    else retries = 0;
    from = answer.next;
  }
  if (retries >= 3) return false;
  if (enc) yield* tdx_accept_memory(accept, start, end, 0);
  return true;
}

/**
 * snp_set_memory_shared() ([linux:arch/x86/coco/sev/core.c set_pages_state]): per descriptor of
 * up to maxEntries entries (2M where aligned and 2 MiB remain), PVALIDATE(rescind) of each entry
 * (a 2M rescind over 4K RMP entries answers PVALIDATE_FAIL_SIZEMISMATCH and falls back to 4K),
 * then the VMGEXIT PSC to shared.
 */
export function* snp_set_memory_shared(kvm: Kvm, side: SnpGuestAccept, start: number, end: number): Proc<boolean> {
  const sim = kvm.sim;
  const sev = side.sev;
  for (const entries of pscDescriptors(start, end, side.maxEntries)) {
    for (const e of entries) {
      const n = e.huge ? PAGES_PER_2M : 1;
      let validated = 0;
      for (let q = e.page; q < e.page + n; q++) {
        if (!kvm.gmem.allocated.test(q)) continue;
        const h = kvm.gmem.hostPage(q);
        validated += sev.rmp.rescind(h, 1);
      }
      if (validated === 0) continue;
      const mismatch = e.huge && sev.rmp.size2m[kvm.gmem.hostBlocks[e.page / PAGES_PER_2M]!] !== 1;
      if (mismatch && sim.observer !== null) sim.instant('PVALIDATE_FAIL_SIZEMISMATCH', { gpa: hex(e.page * 4096), status: hex(PVALIDATE_FAIL_SIZEMISMATCH) });
      yield sim.compute(e.huge && !mismatch ? sev.costs.pvalidate2mNs : (mismatch ? sev.costs.pvalidate2mNs : 0) + validated * sev.costs.pvalidate4kNs);
      sev.counters.pvalidateRescinded += validated;
    }
    yield* snp_vmgexit_psc_shared(kvm, entries, 0);
  }
  return true;
}

/** snp_set_memory_private(): the PSC to private, then PVALIDATE (the accept path). */
export function* snp_set_memory_private(side: SnpGuestAccept, start: number, end: number): Proc<boolean> {
  yield* snp_accept_memory(side, start, end, 'runtime', 0);
  return true;
}

/** Every 4K of [start, end) in one call per 2 MiB region: `fn(first page, n)`. */
export function* perRegion(start: number, end: number, fn: (first: number, n: number) => Proc<void>): Proc<void> {
  if (start % 4096 !== 0 || end % 4096 !== 0 || start >= end) assert(false, 'a guest range must be 4K aligned and non-empty', { start, end });
  for (let p = start / 4096; p < end / 4096;) {
    const n = Math.min(end / 4096, (Math.floor(p / PAGES_PER_2M) + 1) * PAGES_PER_2M) - p;
    yield* fn(p, n);
    p += n;
  }
}
