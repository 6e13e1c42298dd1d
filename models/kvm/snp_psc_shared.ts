import type { Proc } from '../../sim/index.ts';
import { assert } from '../../sim/assert.ts';
import { hex } from '../arch/units.ts';
import type { Kvm } from './kvm.ts';
import { pscRanges, sevOf, type PscEntry } from './snp_psc.ts';

/**
 * VMGEXIT(SVM_VMGEXIT_PSC) with a descriptor of entries to SNP_PAGE_STATE_SHARED, until VMRUN:
 * snp_begin_psc() forwards each run of adjacent entries as one KVM_HC_MAP_GPA_RANGE exit
 * ([linux:arch/x86/kvm/svm/sev.c snp_begin_psc]); the VMM's KVM_SET_MEMORY_ATTRIBUTES zaps the
 * private NPT leaves and its punch hole makes the RMP entries shared (kvm_gmem_punch_hole()).
 */
export function* snp_vmgexit_psc_shared(kvm: Kvm, entries: readonly PscEntry[], link: number): Proc<void> {
  const sim = kvm.sim;
  const sev = sevOf(kvm);
  const userspace = kvm.userspace;
  if (userspace === null) return assert(false, 'KVM_HC_MAP_GPA_RANGE on a VM without a VMM', kvm.name) as never;
  const start = sim.now;
  sev.counters.pscRequests++;
  const traced = sim.observer !== null;
  const id = traced ? sim.opBegin('snp_begin_psc', { entries: entries.length, op: 'SNP_PAGE_STATE_SHARED', gpa: hex(entries[0]!.page * 4096) }, link, 'kvm') : 0;
  yield sim.stallFor(sev.costs.vmExitNs);
  for (const e of entries) {
    if (e.huge) sev.counters.pscEntries2m++;
    else sev.counters.pscEntries4k++;
  }
  for (const range of pscRanges(entries)) {
    // One exit per run, cut at 2 MiB regions for the model's per-region bookkeeping in the VMM.
    sev.counters.userspaceExits++;
    const t = sim.now;
    yield* userspace.map_gpa_range(range.first * 4096, range.pages, false, id);
    kvm.exits.record('KVM_EXIT_HYPERCALL', sim.now - t);
  }
  yield sim.stallFor(sev.costs.vmEntryNs);
  kvm.exits.record('VMGEXIT_PSC', sim.now - start);
  if (traced) sim.opEnd(id);
}
