import type { Bandwidth, Cpu, Proc } from '../sim/index.ts';

/**
 * The contract between the guest kernel model (models/guest) and the host side of a
 * confidential guest (models/tdx, models/snp, models/kvm, models/host): what the guest's
 * arch_accept_memory() and an idle vCPU's timer tick cost, with the host's shared resources
 * (KVM's mmu_lock, the TDX module's S-EPT try-locks, host CPUs, host memory bandwidth) modelled.
 */

/** early: decompressor / before the GHCB is up (SNP uses the MSR protocol); runtime: afterwards. */
export type AcceptPhase = 'early' | 'runtime';

export interface Platform {
  readonly kind: 'tdx' | 'snp';
  /**
   * arch_accept_memory(start, end): accept guest-physical [start, end) (bytes, 4 KiB aligned)
   * on the calling vCPU thread, which owns `vcpus[vcpu]` (sim.current). VM exits keep the vCPU
   * busy (sim.stall / sim.compute on its CPU).
   */
  arch_accept_memory(vcpu: number, start: number, end: number, phase: AcceptPhase): Proc<void>;
  /** A timer tick on an idle (HLT) vCPU: the exit to KVM and the re-entry. */
  idle_tick_exit(vcpu: number): Proc<void>;
  /** End-of-run check that host-side state balances; throws (assert) if not. */
  checkInvariants(): void;
  /** Host-side metrics (exits, BUSY answers and retries, lock waits, bytes cleared), sorted names. */
  metrics(): Record<string, number>;
  /**
   * The host's memory bandwidth (a socket's, shared by every clear and zero of the host side),
   * for the guest's own memory writes to share. Optional: a test double may leave it out.
   */
  readonly memoryBandwidth?: Bandwidth;
}

/*
 * Implementations (each factory takes PlatformConfig plus optional fields with defaults):
 * - createTdxPlatform(sim, TdxPlatformConfig) in models/tdx/tdx_platform.ts;
 * - createSnpPlatform(sim, SnpPlatformConfig) in models/snp/snp_platform.ts.
 * Bad configuration values throw PlatformConfigError (models/host/config_check.ts) naming the
 * field and the allowed values.
 */

export interface PlatformConfig {
  /** Guest-physical address space to cover, bytes (highest guest RAM address). */
  gpaBytes: number;
  /** The guest's vCPUs, created by the guest model; index = vCPU number. */
  vcpus: Cpu[];
}
