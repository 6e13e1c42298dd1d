import { assert } from '../../sim/assert.ts';
import type { Proc, Sim } from '../../sim/index.ts';
import type { AcceptPhase, Platform, PlatformConfig } from '../platform.ts';
import { costs, integerIn, oneOf, positive } from '../host/config_check.ts';
import { Host, type HostConfig } from '../host/host.ts';
import { GuestMemfd } from '../kvm/guest_memfd.ts';
import { Kvm } from '../kvm/kvm.ts';
import { KVM_COSTS, type KvmCosts } from '../kvm/kvm_costs.ts';
import type { SnpCounters } from '../kvm/snp_psc.ts';
import { sortKeys } from '../tdx/tdx_platform.ts';
import { PAGES_PER_2M } from '../tdx/secure_ept.ts';
import type { AcceptFidelity } from '../tdx/tdx_accept_memory.ts';
import { VMGEXIT_PSC_MAX_COUNT, VMGEXIT_PSC_MAX_ENTRY } from './arch.ts';
import { Rmp } from './rmp.ts';
import { snp_accept_memory, type PscProtocol, type SnpAcceptSide } from './snp_accept_memory.ts';
import { SNP_COSTS, type SnpCosts } from './snp_costs.ts';

export interface SnpPlatformConfig extends PlatformConfig, HostConfig {
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
  kvmCosts?: Partial<KvmCosts>;
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
 * VMM, guest_memfd, RMPUPDATE), the RMP, PVALIDATE, and the host (CPUs, memory bandwidth).
 * arch_accept_memory() is snp_accept_memory() on the calling vCPU.
 */
export function createSnpPlatform(sim: Sim, config: SnpPlatformConfig): SnpPlatform {
  const vcpus = config.vcpus;
  assert(vcpus.length > 0, 'an SNP guest needs at least one vCPU', vcpus.length);
  const psc = oneOf('psc', config.psc, ['ghcb', 'msr'] as const, 'ghcb');
  const maxEntries = integerIn('pscMaxEntries', config.pscMaxEntries, 1, VMGEXIT_PSC_MAX_COUNT, VMGEXIT_PSC_MAX_ENTRY);
  const backing = oneOf('snpBacking', config.snpBacking, ['4k', '2m'] as const, '4k');
  const fidelity = oneOf('fidelity', config.fidelity, ['aggregate', 'per-page'] as const, 'aggregate');
  integerIn('hostCpus', config.hostCpus, 1, 1 << 20, vcpus.length);
  positive('memoryBandwidthBytesPerSec', config.memoryBandwidthBytesPerSec);
  positive('clearBytesPerSec', config.clearBytesPerSec);
  costs('snpCosts', config.snpCosts, Object.keys(SNP_COSTS));
  costs('kvmCosts', config.kvmCosts, Object.keys(KVM_COSTS));

  const host = new Host(sim, vcpus.length, config);
  const kvm = new Kvm(sim, host, { costs: config.kvmCosts ?? {} });
  const rmp = new Rmp(config.gpaBytes);
  const gmem = new GuestMemfd(host, rmp.pages, backing === '2m' ? 2097152 : 4096);
  const counters: SnpCounters = {
    pscRequests: 0, pscEntries4k: 0, pscEntries2m: 0, userspaceExits: 0,
    rmpupdate4k: 0, rmpupdate2m: 0, pvalidate4k: 0, pvalidate2m: 0, pvalidateSizeMismatch: 0,
  };
  const side: SnpAcceptSide = {
    sim, host, kvm, gmem, rmp, costs: { ...SNP_COSTS, ...config.snpCosts }, perPage: fidelity === 'per-page', counters, psc, maxEntries,
  };

  function currentVcpu(vcpu: number): void {
    assert(vcpu >= 0 && vcpu < vcpus.length, 'no such vCPU', vcpu);
    assert(sim.current !== null && sim.current.cpu === vcpus[vcpu], 'arch_accept_memory must run on its vCPU', vcpu);
  }

  return {
    kind: 'snp', memoryBandwidth: host.memory, host, kvm, rmp, gmem, counters,

    *arch_accept_memory(vcpu: number, start: number, end: number, phase: AcceptPhase): Proc<void> {
      currentVcpu(vcpu);
      yield* snp_accept_memory(side, start, end, phase, 0);
    },

    *idle_tick_exit(vcpu: number): Proc<void> {
      currentVcpu(vcpu);
      // HLT is intercepted (an automatic exit for SEV-ES/SNP guests): VMEXIT, KVM's halt and the
      // timer wake-up, VMRUN, on a host CPU.
      const start = sim.now;
      yield host.cpus.acquire();
      yield sim.stallFor(side.costs.vmExitNs + kvm.costs.hltNs + side.costs.vmEntryNs);
      host.cpus.release();
      kvm.exits.record('HLT', sim.now - start);
    },

    checkInvariants(): void {
      checkSnpInvariants(side);
    },

    metrics(): Record<string, number> {
      const out: Record<string, number> = {};
      kvm.metrics(out);
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
      out['host.bytes_cleared'] = host.bytesCleared;
      out['host.cpus.exit_busy_ns'] = host.cpus.busyNs();
      out['host.cpus.waits'] = host.cpus.stats.contended;
      out['host.cpus.wait_ns'] = host.cpus.stats.wait.sum;
      out['host.memory.bytes'] = host.memory.totalBytes;
      out['kvm.gmem.folios'] = gmem.folios;
      return sortKeys(out);
    },
  };
}

/** Every validated page was assigned by RMPUPDATE once and has its folio; counters balance; nothing held. */
function checkSnpInvariants(side: SnpAcceptSide): void {
  const { rmp, gmem, host, kvm, counters } = side;
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
  assert(host.bytesCleared === gmem.folios * gmem.folioPages * 4096, 'bytes cleared and guest_memfd folios disagree', { cleared: host.bytesCleared, folios: gmem.folios });
  assert(!kvm.locksHeld, 'KVM locks still held at the end of the run', kvm.slotsLock.describe());
  assert(host.cpus.inUse === 0, 'host CPUs still in exits at the end of the run', host.cpus.inUse);
}
