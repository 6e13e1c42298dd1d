import { assert } from '../../sim/assert.ts';
import { SecureEpt, type SeptPageKind } from '../tdx/secure_ept.ts';
import type { Td } from '../tdx/td.ts';
import type { TdxModule } from '../tdx/tdx_module.ts';

/**
 * How KVM maps TD private memory in the Secure EPT:
 * - '4k': upstream KVM (tdx_sept_set_private_spte(): KVM_BUG_ON(level != PG_LEVEL_4K)), so a
 *   2M ACCEPT of an unmapped range gets a PT page and a 4K leaf, then TDX_PAGE_SIZE_MISMATCH;
 * - '2m': the unmerged "KVM: TDX huge page support" series: KVM maps at most at the guest's
 *   ACCEPT level, so a 2M ACCEPT of an unmapped 2M range gets a 2M leaf (2 MiB folios).
 */
export const SEPT_MAPPINGS = ['4k', '2m'] as const;
export type SeptMapping = (typeof SEPT_MAPPINGS)[number];

/**
 * `struct kvm_tdx`: KVM's side of one TD: the module and the TD's state in it, how KVM maps
 * private memory, and the mirror SPTEs frozen while their TDH.MEM.SEPT.ADD runs.
 */
export class KvmTdx {
  private readonly frozen = new Set<number>();

  constructor(
    readonly module: TdxModule,
    readonly td: Td,
    readonly sept: SeptMapping,
  ) {}

  /**
   * KVM's mirror SPTE of an S-EPT page being added is frozen (FROZEN_SPTE) while its
   * TDH.MEM.SEPT.ADD runs; another vCPU's fault that meets it retries.
   */
  septPageFrozen(region: number, kind: SeptPageKind): boolean {
    return this.frozen.has(SecureEpt.pageKey(region, kind));
  }

  freezeSeptPage(region: number, kind: SeptPageKind): void {
    const key = SecureEpt.pageKey(region, kind);
    assert(!this.frozen.has(key), 'mirror SPTE frozen twice', { td: this.td.name, region, kind });
    this.frozen.add(key);
  }

  thawSeptPage(region: number, kind: SeptPageKind): void {
    assert(this.frozen.delete(SecureEpt.pageKey(region, kind)), 'thawing a mirror SPTE that is not frozen', { td: this.td.name, region, kind });
  }

  get frozenCount(): number {
    return this.frozen.size;
  }
}
