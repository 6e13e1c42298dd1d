import { Bandwidth, type Proc, type Sim } from '../../sim/index.ts';
import { assert } from '../../sim/assert.ts';
import type { AcceptPhase, Platform } from '../platform.ts';
import { costs, oneOf } from '../host/config_check.ts';
import type { Host } from '../host/host.ts';
import { HostPlatform, type AcceptFidelity, type HostPlatformConfig } from '../host/host_platform.ts';
import type { GuestMemfd } from '../kvm/guest_memfd.ts';
import type { Kvm, KvmRetry } from '../kvm/kvm.ts';
import type { SeptMapping } from '../kvm/tdx_ept_violation.ts';
import { tdx_accept_memory, type TdxAcceptSide } from './tdx_accept_memory.ts';
import { PAGES_PER_2M } from '../host/units.ts';
import { Region } from './secure_ept.ts';
import { TDX_COSTS, type TdxCosts } from './tdx_costs.ts';
import { TdxModule, type TdxModuleVersion } from './tdx_module.ts';

export interface TdxPlatformConfig extends HostPlatformConfig {
  /** S-EPT mapping size KVM uses: '4k' (upstream, default) or '2m' (huge-page series). */
  sept?: SeptMapping;
  /** TDX module whose S-EPT locking is modelled: '1.5' (default) or '1.0'. See TdxModuleVersion. */
  tdxModule?: TdxModuleVersion;
  /** KVM's handling of RET_PF_RETRY after a BUSY SEAMCALL: 'local' (upstream, default) or 'reenter'. */
  kvmRetry?: KvmRetry;
  /** 'aggregate' (default): per-2M steps; 'per-page': every 4K operation its own step. */
  fidelity?: AcceptFidelity;
  tdxCosts?: Partial<TdxCosts>;
}

export interface TdxPlatform extends Platform {
  readonly kind: 'tdx';
  readonly host: Host;
  readonly kvm: Kvm;
  readonly module: TdxModule;
  readonly gmem: GuestMemfd;
  readonly sept: SeptMapping;
  readonly fidelity: AcceptFidelity;
}

/**
 * The host side of a TD (Intel TDX): the TDX module (Secure EPT, its try-locks, ACCEPT/AUG/
 * SEPT.ADD) on top of KVM (EPT-violation exits, mmu_lock, guest_memfd) and the host (CPUs,
 * memory bandwidth), models/host/host_platform.ts. arch_accept_memory() is tdx_accept_memory()
 * on the calling vCPU.
 */
export function createTdxPlatform(sim: Sim, config: TdxPlatformConfig): TdxPlatform {
  const sept = oneOf('sept', config.sept, ['4k', '2m'] as const, '4k');
  const version = oneOf('tdxModule', config.tdxModule, ['1.0', '1.5'] as const, '1.5');
  const retry = oneOf('kvmRetry', config.kvmRetry, ['local', 'reenter'] as const, 'local');
  const fidelity = oneOf('fidelity', config.fidelity, ['aggregate', 'per-page'] as const, 'aggregate');
  costs('tdxCosts', config.tdxCosts, Object.keys(TDX_COSTS));

  const base = new HostPlatform(sim, config, { retry, folioBytes: sept === '2m' ? 2097152 : 4096 });
  const { host, kvm, gmem } = base;
  const module = new TdxModule(sim, host, config.gpaBytes, version, config.tdxCosts ?? {});
  const septLockTime = version === '1.0' && fidelity === 'aggregate' ? new Bandwidth(sim, 'secure_ept_lock (fluid)', 1e9) : null;
  const side: TdxAcceptSide = {
    sim, host, kvm, module, gmem, sept, fidelity, septLockTime,
    counters: { aggregatedSteps: 0, aggregatedPages: 0, contendedSteps: 0, fallbackSteps: 0 },
  };

  return {
    kind: 'tdx', memoryBandwidth: host.memory, host, kvm, module, gmem, sept, fidelity,

    *arch_accept_memory(vcpu: number, start: number, end: number, _phase: AcceptPhase): Proc<void> {
      base.checkVcpu(vcpu);
      yield* tdx_accept_memory(side, start, end, 0);
    },

    *idle_tick_exit(vcpu: number): Proc<void> {
      base.checkVcpu(vcpu);
      // The halted vCPU's TDVMCALL<Instruction.HLT> exit, KVM's halt and the timer wake-up,
      // TDH.VP.ENTER: host CPU time; TDH.VP.ENTER takes only shared module locks (op_state,
      // TD epoch), so it meets the fault path on host CPUs, not on a module lock.
      yield* base.fixedExit('TDVMCALL_HLT', module.costs.tdExitNs + kvm.costs.hltNs + module.costs.tdEntryNs);
    },

    checkInvariants(): void {
      checkTdxInvariants(side);
      base.checkInvariants();
    },

    metrics(): Record<string, number> {
      const out: Record<string, number> = {};
      out['tdx.tdcalls'] = module.tdcalls;
      out['tdx.accept.4k'] = module.accepted4k;
      out['tdx.accept.2m'] = module.accepted2m;
      out['tdx.accept.size_mismatch'] = module.sizeMismatch;
      out['tdx.accept.operand_invalid'] = module.operandInvalid;
      out['tdx.aug.4k'] = module.augs4k;
      out['tdx.aug.2m'] = module.augs2m;
      out['tdx.sept_add'] = module.septAdds;
      out['tdx.busy.total'] = module.busyTotal();
      for (const [name, n] of module.busy) out[`tdx.busy.${name}`] = n;
      out['tdx.secure_ept_lock.acquisitions'] = module.secureEptLock.stats.acquisitions;
      out['tdx.secure_ept_lock.busy'] = module.secureEptLock.stats.busy;
      out['tdx.bytes_zeroed'] = module.bytesZeroed;
      out['model.aggregated_steps'] = side.counters.aggregatedSteps;
      out['model.aggregated_pages'] = side.counters.aggregatedPages;
      out['model.aggregated_contended_steps'] = side.counters.contendedSteps;
      out['model.aggregated_fallbacks'] = side.counters.fallbackSteps;
      return base.metrics(out);
    },
  };
}

/** The module's balance after a run: every accepted 4K was AUGed once, counters agree, no module lock held. */
function checkTdxInvariants(side: TdxAcceptSide): void {
  const { module, gmem } = side;
  const sept = module.sept;
  assert(sept.aug4k.recount() === sept.aug4k.count, 'S-EPT AUG bitmap and its count disagree', sept.aug4k.count);
  assert(sept.accepted4k.recount() === sept.accepted4k.count, 'S-EPT accepted bitmap and its count disagree', sept.accepted4k.count);
  const aug = sept.aug4k.words;
  const acc = sept.accepted4k.words;
  const mem = gmem.allocated.words;
  for (let i = 0; i < acc.length; i++) {
    assert((acc[i]! & ~aug[i]!) === 0, 'a 4K page was accepted without TDH.MEM.PAGE.AUG', { page: i * 32 });
    assert((aug[i]! & ~mem[i]!) === 0, 'a 4K page was AUGed without a guest_memfd folio', { page: i * 32 });
  }
  let pt = 0;
  let leaves = 0;
  let mapped = 0;
  for (let r = 0; r < sept.regions.length; r++) {
    const state = sept.regions[r] as Region;
    if (state === Region.PageTable) pt++;
    if (state === Region.LeafPending || state === Region.LeafMapped) {
      leaves++;
      assert(sept.aug4k.countRange(r * PAGES_PER_2M, PAGES_PER_2M) === 0, '4K leaves under a 2M leaf', r);
      assert(gmem.allocated.countRange(r * PAGES_PER_2M, PAGES_PER_2M) === PAGES_PER_2M, 'a 2M leaf without its guest_memfd folio', r);
    }
    if (state === Region.LeafMapped) mapped++;
    if (state === Region.Free) assert(sept.aug4k.countRange(r * PAGES_PER_2M, PAGES_PER_2M) === 0, 'a 4K leaf in a region with no PT page', r);
  }
  assert(module.augs4k === sept.aug4k.count, 'TDH.MEM.PAGE.AUG(4K) count and S-EPT 4K leaves disagree', { augs: module.augs4k, leaves: sept.aug4k.count });
  assert(module.augs2m === leaves && sept.leaves2m === leaves, 'TDH.MEM.PAGE.AUG(2M) count and S-EPT 2M leaves disagree', { augs: module.augs2m, leaves });
  assert(module.accepted4k === sept.accepted4k.count, '4K accepts and MAPPED 4K leaves disagree', { accepts: module.accepted4k, mapped: sept.accepted4k.count });
  assert(module.accepted2m === mapped && sept.accepted2m === mapped, '2M accepts and MAPPED 2M leaves disagree', { accepts: module.accepted2m, mapped });
  let upper = 0;
  for (const v of sept.pdPresent) upper += v;
  for (const v of sept.pdptPresent) upper += v;
  assert(module.septAdds === pt + upper && sept.septPagesAdded === pt + upper, 'TDH.MEM.SEPT.ADD count and S-EPT pages disagree', { adds: module.septAdds, pages: pt + upper });
  assert(!module.secureEptLock.exclusive && module.secureEptLock.sharedCount === 0, 'secure_ept_lock still held at the end of the run', module.secureEptLock.describe());
  assert(module.entryLocks.heldCount === 0, 'S-EPT entry locks still held at the end of the run', module.entryLocks.heldCount);
}
