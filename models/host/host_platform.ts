import { MiB, type Cpu, type Proc, type Sim } from '../../sim/index.ts';
import { assert } from '../../sim/assert.ts';
import type { PlatformConfig } from '../platform.ts';
import { GuestMemfd } from '../kvm/guest_memfd.ts';
import { Kvm, type KvmRetry } from '../kvm/kvm.ts';
import { KVM_COSTS, type KvmCosts } from '../kvm/kvm_costs.ts';
import { costs, integerIn, positive } from './config_check.ts';
import { Host, type HostConfig } from './host.ts';

/**
 * How a platform simulates per-4K host work: 'aggregate' (default) runs a region's identical 4K
 * steps as one timed step (exactly the per-page time when uncontended; the TDX and SNP files say
 * what each aggregates), 'per-page' gives every TDCALL, exit, SEAMCALL, RMPUPDATE, PVALIDATE,
 * clear and zero its own step (exact, slow).
 */
export type AcceptFidelity = 'aggregate' | 'per-page';

/** Configuration every confidential guest's host side takes, whatever the technology. */
export interface HostPlatformConfig extends PlatformConfig, HostConfig {
  kvmCosts?: Partial<KvmCosts>;
}

/** The parts of a guest's host side that the TDX and SNP exit paths share. */
export interface HostParts {
  readonly sim: Sim;
  readonly host: Host;
  readonly kvm: Kvm;
  readonly gmem: GuestMemfd;
}

/**
 * The host side of a confidential guest without its technology: the host machine (CPUs, memory
 * bandwidth), KVM (locks, exit accounting, costs) and the guest_memfd backing private memory,
 * with their configuration checks, their metrics and their end-of-run invariants. The TDX and
 * SNP platforms add the TDX module or the RMP on top.
 */
export class HostPlatform implements HostParts {
  readonly host: Host;
  readonly kvm: Kvm;
  readonly gmem: GuestMemfd;
  readonly vcpus: readonly Cpu[];

  /** Checks the host part of config (bad values throw PlatformConfigError), then builds it. */
  constructor(
    readonly sim: Sim,
    config: HostPlatformConfig,
    options: { folioBytes: 4096 | 2097152; retry?: KvmRetry },
  ) {
    const vcpus = config.vcpus;
    assert(vcpus.length > 0, 'a confidential guest needs at least one vCPU', vcpus.length);
    assert(config.gpaBytes > 0 && config.gpaBytes % (2 * MiB) === 0, 'gpaBytes must be a positive multiple of 2 MiB', config.gpaBytes);
    integerIn('hostCpus', config.hostCpus, 1, 1 << 20, vcpus.length);
    positive('memoryBandwidthBytesPerSec', config.memoryBandwidthBytesPerSec);
    positive('clearBytesPerSec', config.clearBytesPerSec);
    costs('kvmCosts', config.kvmCosts, Object.keys(KVM_COSTS));
    this.vcpus = vcpus;
    this.host = new Host(sim, vcpus.length, config);
    this.kvm = new Kvm(sim, this.host, { costs: config.kvmCosts ?? {}, ...(options.retry === undefined ? {} : { retry: options.retry }) });
    this.gmem = new GuestMemfd(this.host, config.gpaBytes / 4096, options.folioBytes);
  }

  /** arch_accept_memory() and the idle tick run on the calling vCPU's own thread. */
  checkVcpu(vcpu: number): void {
    assert(vcpu >= 0 && vcpu < this.vcpus.length, 'no such vCPU', vcpu);
    const p = this.sim.current;
    assert(p !== null && p.cpu === this.vcpus[vcpu], 'arch_accept_memory must run on its vCPU', vcpu);
  }

  /**
   * A VM exit with no work of its own, `ns` from exit to re-entry on a host CPU (an idle vCPU's
   * timer tick), recorded under `reason`.
   */
  *fixedExit(reason: string, ns: number): Proc<void> {
    const { sim, host } = this;
    const start = sim.now;
    yield host.cpus.acquire();
    yield sim.stallFor(ns);
    host.cpus.release();
    this.kvm.exits.record(reason, sim.now - start);
  }

  /** The platform's own metrics `out` plus KVM's and the host's, sorted by name. */
  metrics(out: Record<string, number>): Record<string, number> {
    const { host, kvm, gmem } = this;
    kvm.metrics(out);
    out['host.bytes_cleared'] = host.bytesCleared;
    out['host.cpus.exit_busy_ns'] = host.cpus.busyNs();
    out['host.cpus.waits'] = host.cpus.stats.contended;
    out['host.cpus.wait_ns'] = host.cpus.stats.wait.sum;
    out['host.memory.bytes'] = host.memory.totalBytes;
    out['kvm.gmem.folios'] = gmem.folios;
    const sorted: Record<string, number> = {};
    for (const k of Object.keys(out).sort()) sorted[k] = out[k]!;
    return sorted;
  }

  /** Every folio was cleared once; no lock and no host CPU is still held at the end of a run. */
  checkInvariants(): void {
    const { host, kvm, gmem } = this;
    assert(gmem.allocated.recount() === gmem.allocated.count, 'guest_memfd bitmap and its count disagree', gmem.allocated.count);
    assert(host.bytesCleared === gmem.folios * gmem.folioPages * 4096, 'bytes cleared and guest_memfd folios disagree', { cleared: host.bytesCleared, folios: gmem.folios });
    assert(!kvm.locksHeld, 'KVM locks still held at the end of the run', `${kvm.mmuLock.describe()}; ${kvm.slotsLock.describe()}`);
    assert(host.cpus.inUse === 0, 'host CPUs still in exits at the end of the run', host.cpus.inUse);
  }
}
