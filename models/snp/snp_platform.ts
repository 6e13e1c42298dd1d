import { assert } from '../../sim/assert.ts';
import type { Proc, Sim } from '../../sim/index.ts';
import type { AcceptPhase, Platform } from '../platform.ts';
import { costs, integerIn, oneOf } from '../host/config_check.ts';
import type { Host } from '../host/host.ts';
import { HostPlatform, type AcceptFidelity, type HostPlatformConfig } from '../host/host_platform.ts';
import type { GuestMemfd } from '../kvm/guest_memfd.ts';
import type { Kvm } from '../kvm/kvm.ts';
import type { SnpCounters } from '../kvm/snp_psc.ts';
import { PAGES_PER_2M } from '../host/units.ts';
import { VMGEXIT_PSC_MAX_COUNT, VMGEXIT_PSC_MAX_ENTRY } from './arch.ts';
import { Rmp } from './rmp.ts';
import { snp_accept_memory, type PscProtocol, type SnpAcceptSide } from './snp_accept_memory.ts';
import { SNP_COSTS, type SnpCosts } from './snp_costs.ts';

export interface SnpPlatformConfig extends HostPlatformConfig {
  /** Runtime page state changes through the GHCB ('ghcb', default) or the MSR protocol ('msr'). */
  psc?: PscProtocol;
  /** Entries per PSC descriptor: default 64 (Linux VMGEXIT_PSC_MAX_ENTRY), at most 253 (GHCB spec). */
  pscMaxEntries?: number;
  /**
   * guest_memfd folio size: '4k' (upstream, default: every RMP entry is 4K, so a 2M PVALIDATE
   * answers SIZEMISMATCH and falls back to 512 4K ones) or '2m' (the unmerged 2M THP series:
   * 2M RMP entries for 2M PSC entries).
   */
  snpBacking?: '4k' | '2m';
  /** 'aggregate' (default): an entry's 512 4K RMPUPDATEs/PVALIDATEs as one step; 'per-page'. */
  fidelity?: AcceptFidelity;
  snpCosts?: Partial<SnpCosts>;
}

export interface SnpPlatform extends Platform {
  readonly kind: 'snp';
  readonly host: Host;
  readonly kvm: Kvm;
  readonly rmp: Rmp;
  readonly gmem: GuestMemfd;
  readonly counters: SnpCounters;
}

/**
 * The host side of an SEV-SNP guest: KVM's page state change handling (VMGEXIT, exits to the
 * VMM, guest_memfd, RMPUPDATE), the RMP and PVALIDATE, on top of the host (CPUs, memory
 * bandwidth), models/host/host_platform.ts. arch_accept_memory() is snp_accept_memory() on the
 * calling vCPU.
 */
export function createSnpPlatform(sim: Sim, config: SnpPlatformConfig): SnpPlatform {
  const psc = oneOf('psc', config.psc, ['ghcb', 'msr'] as const, 'ghcb');
  const maxEntries = integerIn('pscMaxEntries', config.pscMaxEntries, 1, VMGEXIT_PSC_MAX_COUNT, VMGEXIT_PSC_MAX_ENTRY);
  const backing = oneOf('snpBacking', config.snpBacking, ['4k', '2m'] as const, '4k');
  const fidelity = oneOf('fidelity', config.fidelity, ['aggregate', 'per-page'] as const, 'aggregate');
  costs('snpCosts', config.snpCosts, Object.keys(SNP_COSTS));

  const base = new HostPlatform(sim, config, { folioBytes: backing === '2m' ? 2097152 : 4096 });
  const { host, kvm, gmem } = base;
  const rmp = new Rmp(config.gpaBytes);
  const counters: SnpCounters = {
    pscRequests: 0, pscEntries4k: 0, pscEntries2m: 0, userspaceExits: 0,
    rmpupdate4k: 0, rmpupdate2m: 0, pvalidate4k: 0, pvalidate2m: 0, pvalidateSizeMismatch: 0,
  };
  const side: SnpAcceptSide = {
    sim, host, kvm, gmem, rmp, costs: { ...SNP_COSTS, ...config.snpCosts }, perPage: fidelity === 'per-page', counters, psc, maxEntries,
  };

  return {
    kind: 'snp', memoryBandwidth: host.memory, host, kvm, rmp, gmem, counters,

    *arch_accept_memory(vcpu: number, start: number, end: number, phase: AcceptPhase): Proc<void> {
      base.checkVcpu(vcpu);
      yield* snp_accept_memory(side, start, end, phase, 0);
    },

    *idle_tick_exit(vcpu: number): Proc<void> {
      base.checkVcpu(vcpu);
      // HLT is intercepted (an automatic exit for SEV-ES/SNP guests): VMEXIT, KVM's halt and the
      // timer wake-up, VMRUN, on a host CPU.
      yield* base.fixedExit('HLT', side.costs.vmExitNs + kvm.costs.hltNs + side.costs.vmEntryNs);
    },

    checkInvariants(): void {
      checkSnpInvariants(side);
      base.checkInvariants();
    },

    metrics(): Record<string, number> {
      const out: Record<string, number> = {};
      out['snp.psc.requests'] = counters.pscRequests;
      out['snp.psc.entries_4k'] = counters.pscEntries4k;
      out['snp.psc.entries_2m'] = counters.pscEntries2m;
      out['snp.userspace_exits'] = counters.userspaceExits;
      out['snp.rmpupdate.4k'] = counters.rmpupdate4k;
      out['snp.rmpupdate.2m'] = counters.rmpupdate2m;
      out['snp.pvalidate.4k'] = counters.pvalidate4k;
      out['snp.pvalidate.2m'] = counters.pvalidate2m;
      out['snp.pvalidate.size_mismatch'] = counters.pvalidateSizeMismatch;
      out['snp.validated_pages'] = rmp.validated.count;
      return base.metrics(out);
    },
  };
}

/** Every validated page was assigned by RMPUPDATE once and has its folio; counters balance. */
function checkSnpInvariants(side: SnpAcceptSide): void {
  const { rmp, gmem, counters } = side;
  assert(rmp.assigned.recount() === rmp.assigned.count, 'RMP assigned bitmap and its count disagree', rmp.assigned.count);
  assert(rmp.validated.recount() === rmp.validated.count, 'RMP validated bitmap and its count disagree', rmp.validated.count);
  const as = rmp.assigned.words;
  const va = rmp.validated.words;
  const mem = gmem.allocated.words;
  for (let i = 0; i < va.length; i++) {
    assert((va[i]! & ~as[i]!) === 0, 'a page was PVALIDATEd without RMPUPDATE', { page: i * 32 });
    assert((as[i]! & ~mem[i]!) === 0, 'a page was assigned in the RMP without a guest_memfd folio', { page: i * 32 });
  }
  let entries2m = 0;
  for (let r = 0; r < rmp.size2m.length; r++) {
    if (rmp.size2m[r] !== 1) continue;
    entries2m++;
    assert(rmp.assigned.countRange(r * PAGES_PER_2M, PAGES_PER_2M) === PAGES_PER_2M, 'a 2M RMP entry over pages not all assigned', r);
  }
  assert(counters.rmpupdate2m === entries2m, 'RMPUPDATE(2M) count and 2M RMP entries disagree', { updates: counters.rmpupdate2m, entries: entries2m });
  assert(counters.rmpupdate4k + PAGES_PER_2M * counters.rmpupdate2m === rmp.assigned.count, 'RMPUPDATE counts and assigned pages disagree', { u4k: counters.rmpupdate4k, u2m: counters.rmpupdate2m, assigned: rmp.assigned.count });
  const validatedByCount = counters.pvalidate4k + PAGES_PER_2M * (counters.pvalidate2m - counters.pvalidateSizeMismatch);
  assert(validatedByCount === rmp.validated.count, 'PVALIDATE counts and validated pages disagree', { counted: validatedByCount, validated: rmp.validated.count });
}
