import type { Proc } from '../../sim/index.ts';
import { PAGES_PER_2M, hex } from '../arch/units.ts';
import type { Kvm } from './kvm.ts';
import type { KvmMemoryAttributes } from './memory_attributes.ts';

/**
 * fallocate(PUNCH_HOLE) on the VM's guest_memfd over [first, first + n) (kvm_gmem_punch_hole(),
 * [linux:virt/kvm/guest_memfd.c]): filemap_invalidate_lock exclusive, invalidate begin under
 * mmu_lock for write (the private leaves there are already zapped by the attribute change),
 * truncate: each 4K folio leaves the file and its host page is freed; on SNP the folio's
 * invalidation makes its RMP entry shared again first (sev_gmem_invalidate() ->
 * rmp_make_shared(), [linux:arch/x86/kvm/svm/sev.c], a 2M entry smashed first). With
 * `truncate` false (in-place conversion) the folios stay and only the RMP changes.
 * Per region, on the calling (VMM vCPU) thread.
 */
export function* kvm_gmem_punch_hole(kvm: Kvm, attrs: KvmMemoryAttributes, first: number, n: number, truncate: boolean): Proc<number> {
  const sim = kvm.sim;
  const costs = attrs.costs;
  yield attrs.filemapInvalidateLock.acquire();
  yield sim.stallFor(costs.punchHoleBaseNs);
  let freed = 0;
  yield* attrs.writeSection(function* () {
    kvm.mmuInvalidateBegin(first, n);
  });
  for (let p = first; p < first + n;) {
    const regionEnd = (Math.floor(p / PAGES_PER_2M) + 1) * PAGES_PER_2M;
    const run = Math.min(first + n, regionEnd) - p;
    if (kvm.sev !== null) yield* rmpMakeShared(kvm, p, run);
    if (truncate) {
      const pages = kvm.gmem.punchHole(p, run);
      freed += pages.length;
      if (pages.length > 0) yield sim.stallFor(pages.length * costs.punchHolePerFolioNs);
    }
    p += run;
  }
  yield* attrs.writeSection(function* () {
    kvm.mmuInvalidateEnd();
  });
  attrs.filemapInvalidateLock.release();
  return freed;
}

/** sev_gmem_invalidate() for the guest pages [first, first + n) of one region: RMPUPDATE to shared per assigned 4K. */
function* rmpMakeShared(kvm: Kvm, first: number, n: number): Proc<void> {
  const sev = kvm.sev!;
  const gmem = kvm.gmem;
  const region = Math.floor(first / PAGES_PER_2M);
  const block = gmem.hostBlocks[region]!;
  if (block < 0) return;
  const h = block * PAGES_PER_2M + (first % PAGES_PER_2M);
  const todo = sev.rmp.assigned.countRange(h, n);
  if (todo === 0) return;
  const traced = kvm.sim.observer !== null;
  const id = traced ? kvm.sim.opBegin('RMPUPDATE', { gpa: hex(first * 4096), hpa: hex(h * 4096), size: 4096, 'cvmsim.aggregated.count': todo, state: 'shared' }, 0, 'snp-firmware') : 0;
  if (sev.rmp.size2m[block] === 1 && n < PAGES_PER_2M) {
    yield kvm.sim.stallFor(sev.costs.rmpupdate2mNs);
    sev.rmp.psmash(block);
    sev.counters.psmash++;
  } else if (sev.rmp.size2m[block] === 1) {
    sev.rmp.psmash(block);
    sev.counters.psmash++;
  }
  yield kvm.sim.stallFor(todo * sev.costs.rmpupdate4kNs);
  sev.counters.rmpupdateShared += sev.rmp.makeShared(h, n);
  if (traced) kvm.sim.opEnd(id);
}
