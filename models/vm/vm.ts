import { Cpu, countMetric, measureMetric, prefixedMetrics, type Bandwidth, type MetricSpecs, type Proc, type Sim } from '../../sim/index.ts';
import { assert } from '../../sim/assert.ts';
import { PAGES_PER_2M } from '../arch/units.ts';
import { GuestKernel, guestPhysBytes, type GuestConfig } from '../guest/kernel.ts';
import type { AcceptPhase, GuestConversionPlatform, GuestPlatform } from '../guest/platform.ts';
import { KvmMemoryAttributes } from '../kvm/memory_attributes.ts';
import type { ConversionCosts } from '../kvm/conversion_costs.ts';
import { SharedBacking, type SharedBackingKind } from '../vmm/shared_backing.ts';
import { perRegion, snp_set_memory_private, snp_set_memory_shared, tdx_enc_status_changed, type EncStatusCounters } from './enc_status.ts';
import { PlatformConfigError, costs, integerIn, oneOf } from '../host/config_check.ts';
import type { Host, HostVmRecord } from '../host/host.ts';
import { GuestMemfd } from '../kvm/guest_memfd.ts';
import { KVM_METRICS, KVM_RETRIES, Kvm, type KvmRetry } from '../kvm/kvm.ts';
import { KVM_COSTS, type KvmCosts } from '../kvm/kvm_costs.ts';
import { KvmSev } from '../kvm/sev.ts';
import { KvmTdx, SEPT_MAPPINGS, type SeptMapping } from '../kvm/tdx.ts';
import { tdx_vm_destroy, type TdxTeardownResult } from '../kvm/tdx_teardown.ts';
import { Region, type SecureEpt } from '../tdx/secure_ept.ts';
import { TD_METRICS } from '../tdx/td.ts';
import type { Pamt } from '../tdx/pamt.ts';
import { VMGEXIT_PSC_MAX_COUNT, VMGEXIT_PSC_MAX_ENTRY } from '../snp/arch.ts';
import { VMM_METRICS, Vmm } from '../vmm/vmm.ts';
import { vmm_setup_vm } from '../vmm/vm_setup.ts';
import type { Process } from '../../sim/index.ts';
import { ACCEPT_FIDELITIES, type AcceptFidelity } from './fidelity.ts';
import { PSC_PROTOCOLS, SnpGuestAccept, snp_accept_memory, type PscProtocol } from './snp_accept_memory.ts';
import { TDX_ACCEPT_MODEL_METRICS, TdxGuestAccept, tdx_accept_memory } from './tdx_accept_memory.ts';

/** guest_memfd folio size for SNP: upstream 4K, or 2M with the unmerged THP series ([roth-2024-12-gmem-thp]). */
export const SNP_BACKINGS = ['4k', '2m'] as const;
export type SnpBacking = (typeof SNP_BACKINGS)[number];

/** One confidential guest's configuration on its host. */
export interface VmConfig {
  /** The guest kernel the VM boots; absent for a bare VM (below). */
  guest?: GuestConfig;
  /**
   * A VM without a guest kernel, whose vCPUs a test drives directly (as KVM's selftests do):
   * its vCPU count and guest-physical size (a multiple of 2 MiB).
   */
  bare?: { vcpus: number; gpaBytes: number };
  /** TDX: the S-EPT mapping size KVM uses ('4k' upstream, default). */
  sept?: SeptMapping;
  /** TDX: KVM's handling of RET_PF_RETRY after a BUSY SEAMCALL ('local' upstream, default). */
  kvmRetry?: KvmRetry;
  /** SNP: runtime page state changes through the GHCB (default) or the MSR protocol. */
  psc?: PscProtocol;
  /** SNP: entries per PSC descriptor: default 64 (Linux VMGEXIT_PSC_MAX_ENTRY), at most 253. */
  pscMaxEntries?: number;
  /** SNP: guest_memfd folio size ('4k' upstream, default). */
  snpBacking?: SnpBacking;
  /**
   * SNP: the VMM prefaults private memory on each page state change (the unmerged QEMU patch
   * [lendacky-2025-03-snp-prefault]); default false (upstream: PVALIDATE faults each page in).
   */
  snpPrefault?: boolean;
  /** The VMM discards the shared backing on each conversion to private (QEMU, default true). */
  vmmDiscard?: boolean;
  /** 'aggregate' (default): per-2M steps; 'per-page': every 4K operation its own step. */
  fidelity?: AcceptFidelity;
  kvmCosts?: Partial<KvmCosts>;
  /**
   * Simulate the VMM's setup before the vCPUs start (memslots, KVM_SET_MEMORY_ATTRIBUTES, the
   * TD build or SNP launch: models/vmm/vm_setup.ts); the caller starts it with startSetup().
   * Default false: the VM is ready at creation.
   */
  setup?: boolean;
}

/** What Vm.metrics() writes under the VM's prefix (`vm1`). */
export const VM_METRICS: MetricSpecs = {
  'vcpus.busy_ns': measureMetric('ns', 'vCPU time running guest code, all vCPUs'),
  'vcpus.spin_ns': measureMetric('ns', 'vCPU time spinning on guest locks'),
  'vcpus.stall_ns': measureMetric('ns', 'vCPU time in VM exits and host work'),
  'vcpus.idle_ns': measureMetric('ns', 'vCPU time halted'),
  'vcpus.steal_ns': measureMetric('ns', 'vCPU time runnable but waiting for a host CPU (steal)'),
  ...prefixedMetrics('kvm', KVM_METRICS),
  ...prefixedMetrics('vmm', VMM_METRICS),
  ...prefixedMetrics('tdx', TD_METRICS),
  ...prefixedMetrics('model', TDX_ACCEPT_MODEL_METRICS),
  'guest.map_gpa.calls': countMetric('TDVMCALLs', 'TDG.VP.VMCALL<MapGPA> the guest issued'),
  'guest.map_gpa.retries': countMetric('answers', 'MapGPA answered TDVMCALL_STATUS_RETRY (an interrupt pending between 2 MiB chunks)'),
};

/**
 * A confidential VM on a host: the one name for "the host side of one guest". It owns its vCPUs
 * (threads of its VMM process, on the host's CPUs), its `struct kvm` (locks, exits, guest_memfd,
 * the TD's or SNP guest's KVM state), its VMM process and its guest kernel, which it builds on
 * its vCPUs with itself as the guest's platform (arch_accept_memory, the idle tick). The host
 * keeps what is shared: CPUs, memory bandwidth, the TDX module or SNP firmware.
 */
export class Vm implements GuestPlatform, GuestConversionPlatform {
  readonly kind: 'tdx' | 'snp';
  readonly record: HostVmRecord;
  readonly vcpus: Cpu[];
  readonly kvm: Kvm;
  readonly vmm: Vmm;
  /** The guest kernel (null for a bare VM). */
  readonly kernel: GuestKernel | null;
  readonly fidelity: AcceptFidelity;
  private readonly tdxAccept: TdxGuestAccept | null = null;
  /** Whether the VMM's setup is simulated (VmConfig.setup). */
  readonly simulateSetup: boolean;
  private readonly snpAccept: SnpGuestAccept | null = null;

  /** Checks the VM's configuration (bad values throw PlatformConfigError), joins `host`, builds the VM. */
  constructor(
    readonly sim: Sim,
    readonly host: Host,
    config: VmConfig,
  ) {
    const sept = oneOf('sept', config.sept, SEPT_MAPPINGS, '4k');
    const retry = oneOf('kvmRetry', config.kvmRetry, KVM_RETRIES, 'local');
    const psc = oneOf('psc', config.psc, PSC_PROTOCOLS, 'ghcb');
    const maxEntries = integerIn('pscMaxEntries', config.pscMaxEntries, 1, VMGEXIT_PSC_MAX_COUNT, VMGEXIT_PSC_MAX_ENTRY);
    const backing = oneOf('snpBacking', config.snpBacking, SNP_BACKINGS, '4k');
    this.fidelity = oneOf('fidelity', config.fidelity, ACCEPT_FIDELITIES, 'aggregate');
    this.simulateSetup = config.setup ?? false;
    costs('kvmCosts', config.kvmCosts, Object.keys(KVM_COSTS));
    const g = config.guest;
    const bare = config.bare;
    assert((g === undefined) !== (bare === undefined), 'a VM has either a guest kernel or is bare', Object.keys(config));
    const vcpus = g?.vcpus ?? bare!.vcpus;
    const gpaBytes = g !== undefined ? guestPhysBytes(g.memoryBytes) : bare!.gpaBytes;
    integerIn('vcpus', vcpus, 1, 1 << 16, 1);
    if (!(gpaBytes > 0 && gpaBytes % (2 * 1024 * 1024) === 0)) throw new PlatformConfigError(`gpaBytes must be a positive multiple of 2 MiB (got ${gpaBytes})`);
    this.kind = host.config.technology;
    this.record = host.admit(vcpus, g?.memoryBytes ?? gpaBytes);
    const name = this.record.name;
    const folioBytes = (this.kind === 'tdx' ? sept : backing) === '2m' ? 2097152 : 4096;
    const { owner, node } = this.record;
    const gmem = new GuestMemfd(gpaBytes / 4096, folioBytes, host.memory, owner, node, host.sockets[node]!.memory, host.clearRate);
    this.kvm = new Kvm(sim, name, gmem, { retry, costs: config.kvmCosts ?? {}, lines: host.lineOptions, zoneLines: host.zoneLines, node });
    this.vmm = new Vmm(sim, name, this.kvm);
    this.kvm.userspace = this.vmm;
    this.vmm.discard = config.vmmDiscard ?? true;
    if (host.tdx !== null) {
      const td = host.tdx.createTd(name, this.record.key, gpaBytes, host.sockets[node]!.memory);
      this.kvm.tdx = new KvmTdx(host.tdx, td, sept, { memory: host.memory, owner, node, pamt: host.tdxPamt }, vcpus);
      this.tdxAccept = new TdxGuestAccept(sim, this.kvm, this.fidelity);
    } else {
      const snp = host.snp!;
      this.kvm.sev = new KvmSev(this.record.key, host.rmp!, snp.costs, this.fidelity === 'per-page', host.snpKernel!, config.snpPrefault ?? false);
      this.snpAccept = new SnpGuestAccept(sim, this.kvm, psc, maxEntries);
    }
    this.vcpus = [];
    // Each vCPU is a thread of the VMM on the host's CPUs: it holds one while it is not halted.
    const onHostCpuChange = () => this.kvm.vcpuLoad();
    for (let i = 0; i < vcpus; i++) this.vcpus.push(new Cpu(sim, `${name}/vcpu${i}`, { host: host.cpus, onHostCpuChange }));
    this.kernel = g === undefined ? null : new GuestKernel(sim, g, {
      vcpus: this.vcpus,
      platform: this,
      identity: { threadPrefix: `${name}/`, service: `guest/${name}`, streamPrefix: `vm.${this.record.id}.` },
    });
  }

  /**
   * Starts the VMM's setup of this VM (models/vmm/vm_setup.ts) on the VMM's main thread, a host
   * thread on the host's CPUs, `delayNs` from now; the guest's boot waits for it. Null when the
   * setup is not simulated. On TDX the TD is INITIALIZED (not yet runnable) until it finishes.
   */
  startSetup(delayNs = 0): Process<void> | null {
    if (!this.simulateSetup) return null;
    const { sim, host, record } = this;
    const name = this.name;
    const cpu = new Cpu(sim, `${name}/qemu`, { host: host.cpus });
    const ram = this.kernel !== null ? this.kernel.map.ram.map((r) => ({ start: r.start, end: r.end })) : [{ start: 0, end: this.kvm.gmem.allocated.pages * 4096 }];
    const plan = {
      ram: mergeSlots(ram),
      vcpus: this.vcpus.length,
      snp: host.snp,
      allocImagePage: () => host.memory.allocPage(record.owner, 'firmware', record.node),
      perPage: this.fidelity === 'per-page',
    };
    const vmm = this.vmm;
    if (this.kvm.tdx !== null) this.kvm.tdx.td.opState = 'initialized';
    const body = (function* () {
      if (delayNs > 0) yield sim.sleep(delayNs);
      yield* vmm_setup_vm(vmm, plan, cpu);
    })();
    return sim.spawn(body, { name: `${name}/qemu/main`, cpu, service: `vmm/${name}` });
  }

  /** What the guest's conversions did through this VM (MapGPA calls and RETRYs). */
  readonly enc: EncStatusCounters = { mapGpaCalls: 0, mapGpaRetries: 0 };

  /**
   * Turns on private/shared conversions (models/kvm/memory_attributes.ts): KVM's per-page
   * attributes (all private, as QEMU sets them at start), the VMM's shared backing of `kind`,
   * and the guest timer whose interrupts stop a MapGPA between chunks.
   */
  enableConversions(kind: SharedBackingKind, timerPeriodNs: number, costs: Partial<ConversionCosts> = {}): void {
    const kvm = this.kvm;
    assert(kvm.attrs === null, 'conversions enabled twice', this.name);
    const pages = kvm.gmem.allocated.pages;
    const attrs = new KvmMemoryAttributes(kvm, this.vcpus, pages, costs);
    attrs.timerPeriodNs = timerPeriodNs;
    const { owner, node } = this.record;
    const shared = new SharedBacking(kind, pages, this.host.memory, owner, node, this.memoryBandwidth, this.host.clearRate, attrs.costs, kvm.gmem);
    attrs.source = shared;
    kvm.attrs = attrs;
    this.vmm.shared = shared;
  }

  *enc_status_change(vcpu: number, start: number, end: number, enc: boolean): Proc<boolean> {
    this.checkVcpu(vcpu);
    const attrs = this.kvm.attrs;
    if (attrs === null) return assert(false, 'a conversion on a VM without conversions enabled', this.name) as never;
    yield* attrs.payKicks(vcpu);
    if (this.tdxAccept !== null) return yield* tdx_enc_status_changed(this.kvm, this.tdxAccept, this.enc, start, end, enc, attrs.timerPeriodNs);
    return enc ? yield* snp_set_memory_private(this.snpAccept!, start, end) : yield* snp_set_memory_shared(this.kvm, this.snpAccept!, start, end);
  }

  *touch(vcpu: number, start: number, end: number, shared: boolean): Proc<void> {
    this.checkVcpu(vcpu);
    const attrs = this.kvm.attrs!;
    yield* attrs.payKicks(vcpu);
    yield* perRegion(start, end, function* (first, n) {
      if (shared) yield* attrs.sharedAccess(first, n);
      attrs.checkAccess(first, n, !shared);
    });
  }

  *pay_kicks(vcpu: number): Proc<void> {
    yield* this.kvm.attrs!.payKicks(vcpu);
  }

  /** Host bytes behind this VM's guest memory now: private (guest_memfd), shared (the VMM's backing), and both at once. */
  conversionFootprint(): { privateBytes: number; sharedBytes: number; doubleBytes: number } {
    const gmem = this.kvm.gmem;
    const shared = this.vmm.shared;
    let both = 0;
    if (shared !== null && shared.kind !== 'in_place') {
      const a = gmem.allocated.words;
      const b = shared.populated.words;
      for (let i = 0; i < a.length; i++) {
        const w = a[i]! & b[i]!;
        if (w !== 0) both += popcount32(w);
      }
    }
    return { privateBytes: gmem.allocated.count * 4096, sharedBytes: shared?.bytes() ?? 0, doubleBytes: both * 4096 };
  }

  /** The guest kernel of a VM that has one. */
  get guest(): GuestKernel {
    const k = this.kernel;
    if (k === null) return assert(false, 'a bare VM has no guest kernel', this.name) as never;
    return k;
  }

  get name(): string {
    return this.record.name;
  }

  /** The guest shares its socket's memory bandwidth for its own page clearing. */
  get memoryBandwidth(): Bandwidth {
    return this.host.sockets[this.record.node]!.memory;
  }

  *arch_accept_memory(vcpu: number, start: number, end: number, phase: AcceptPhase): Proc<void> {
    this.checkVcpu(vcpu);
    if (this.tdxAccept !== null) yield* tdx_accept_memory(this.tdxAccept, start, end, 0);
    else yield* snp_accept_memory(this.snpAccept!, start, end, phase, 0);
  }

  *idle_tick_exit(vcpu: number): Proc<void> {
    this.checkVcpu(vcpu);
    const kvm = this.kvm;
    if (kvm.tdx !== null) {
      // The halted vCPU's TDVMCALL<Instruction.HLT> exit, KVM's halt and the timer wake-up,
      // TDH.VP.ENTER: host CPU time; TDH.VP.ENTER takes only shared module locks (op_state,
      // TD epoch), so it meets the fault path on host CPUs, not on a module lock.
      const c = kvm.tdx.module.costs;
      yield* kvm.fixedExit('TDVMCALL_HLT', c.tdExitNs + kvm.costs.hltNs + c.tdEntryNs);
    } else {
      // HLT is intercepted (an automatic exit for SEV-ES/SNP guests): VMEXIT, KVM's halt and the
      // timer wake-up, VMRUN, on a host CPU.
      const c = kvm.sev!.costs;
      yield* kvm.fixedExit('HLT', c.vmExitNs + kvm.costs.hltNs + c.vmEntryNs);
    }
  }

  *tsc_deadline_exit(vcpu: number): Proc<void> {
    this.checkVcpu(vcpu);
    const kvm = this.kvm;
    // KVM emulates IA32_TSC_DEADLINE for a TD (tdx_has_emulated_msr() [linux:arch/x86/kvm/vmx/tdx.c])
    // and for an SEV-ES/SNP guest's GHCB MSR request: kvm_set_lapic_tscdeadline_msr() restarts
    // the vCPU's hrtimer.
    if (kvm.tdx !== null) {
      const c = kvm.tdx.module.costs;
      yield* kvm.fixedExit('TDVMCALL_WRMSR', c.tdExitNs + kvm.costs.msrNs + c.tdEntryNs);
    } else {
      const c = kvm.sev!.costs;
      yield* kvm.fixedExit('VMGEXIT_MSR', c.vmExitNs + kvm.costs.msrNs + c.vmEntryNs);
    }
  }

  /** arch_accept_memory() and the idle tick run on the calling vCPU's own thread. */
  checkVcpu(vcpu: number): void {
    assert(vcpu >= 0 && vcpu < this.vcpus.length, 'no such vCPU', { vm: this.name, vcpu });
    const p = this.sim.current;
    assert(p !== null && p.cpu === this.vcpus[vcpu], 'arch_accept_memory must run on its vCPU', { vm: this.name, vcpu });
  }

  /**
   * The VM stops (its VMM closes the VM fd after the guest shut down): KVM tears the TD down on
   * the calling thread (models/kvm/tdx_teardown.ts: HKID released, every page reclaimed and put,
   * guest_memfd released), then the host's record of the VM ends. TDX only.
   */
  *shutdown(): Proc<TdxTeardownResult> {
    assert(this.kvm.tdx !== null, 'VM shutdown is modelled for TDs only', this.name);
    const result = yield* tdx_vm_destroy(this.kvm, this.vcpus.length, this.fidelity === 'per-page');
    this.host.release(this.record);
    return result;
  }

  /** This VM's host-side metrics under `prefix` (e.g. `vm1`): its vCPUs' time, KVM, the VMM, its TD, the model. */
  metrics(prefix: string, out: Record<string, number>): void {
    const t = { busyNs: 0, spinNs: 0, stallNs: 0, idleNs: 0, stealNs: 0 };
    for (const cpu of this.vcpus) {
      const a = cpu.accounting();
      t.busyNs += a.busyNs, t.spinNs += a.spinNs, t.stallNs += a.stallNs, t.idleNs += a.idleNs, t.stealNs += a.stealNs;
    }
    out[`${prefix}.vcpus.busy_ns`] = t.busyNs;
    out[`${prefix}.vcpus.spin_ns`] = t.spinNs;
    out[`${prefix}.vcpus.stall_ns`] = t.stallNs;
    out[`${prefix}.vcpus.idle_ns`] = t.idleNs;
    out[`${prefix}.vcpus.steal_ns`] = t.stealNs;
    this.kvm.metrics(`${prefix}.kvm`, out);
    this.vmm.metrics(`${prefix}.vmm`, out);
    this.kvm.tdx?.td.metrics(`${prefix}.tdx`, out);
    this.tdxAccept?.metrics(`${prefix}.model`, out);
    if (this.kvm.attrs !== null && this.kind === 'tdx') {
      out[`${prefix}.guest.map_gpa.calls`] = this.enc.mapGpaCalls;
      out[`${prefix}.guest.map_gpa.retries`] = this.enc.mapGpaRetries;
    }
  }

  /**
   * The VM's host side balances at the end of a run: guest_memfd against host memory, no KVM
   * lock held, and every page the guest accepted is backed by a guest_memfd folio on a host page
   * this VM owns (the TD's S-EPT, or the RMP entries of the SNP guest's ASID). The module's and
   * the RMP's own balance are the host's check.
   */
  checkInvariants(): void {
    const { kvm } = this;
    const gmem = kvm.gmem;
    gmem.checkInvariants();
    kvm.words.checkInvariants();
    kvm.tdx?.td.words.checkInvariants();
    assert(!kvm.locksHeld, 'KVM locks still held at the end of the run', `${kvm.mmuLock.describe()}; ${kvm.slotsLock.describe()}`);
    if (kvm.tdx?.tornDown === true) {
      checkTornDown(this.name, kvm.tdx, this.host, this.record);
      return;
    }
    if (kvm.tdx !== null) {
      kvm.tdx.checkInvariants();
      checkTdBacking(this.name, kvm.tdx.td.sept, gmem);
      checkTdPamt(this.name, kvm.tdx.td.sept, gmem, kvm.tdx.module.pamt);
    }
    if (kvm.sev !== null) checkSnpBacking(this.name, kvm.sev, gmem);
    kvm.attrs?.checkInvariants();
    this.vmm.shared?.checkInvariants();
  }
}

/**
 * A torn-down TD left nothing behind: the module has no Td for its HKID and the HKID is free in
 * the KOT, no page of its control, S-EPT or private memory is a TD page in the PAMT (so the
 * kernel's refcounts of its ranges fell back, checked by the host), its owner holds no host
 * memory and the host's record of it ended.
 */
function checkTornDown(vm: string, tdx: KvmTdx, host: Host, record: HostVmRecord): void {
  const { module, td } = tdx;
  assert(module.tdOf(td.hkid) !== td, 'a torn-down TD is still in the module', vm);
  assert(module.kot.get(td.hkid)?.state === 'free', 'a torn-down TD\'s HKID is not free in the KOT', { vm, hkid: td.hkid });
  assert(td.childPages === 0 && td.lifecycle === 'reclaimed', 'a torn-down TD still has pages in the module', { vm, children: td.childPages, lifecycle: td.lifecycle });
  for (const hpa of [...tdx.controlHpas, ...tdx.septHpas, ...td.image.hpas]) if (module.pamt.inUse(hpa)) assert(false, 'a page of a torn-down TD is still a TD page in the PAMT', { vm, hpa });
  assert(host.memory.usedBytesBy(record.owner) === 0 && host.hasEnded(record), 'a torn-down TD still holds host memory or runs on the host', { vm, bytes: host.memory.usedBytesBy(record.owner) });
}

/**
 * Every AUGed or accepted page of the TD has its guest_memfd folio (gmem.checkInvariants() has
 * already tied every folio to a host page this VM owns).
 */
function checkTdBacking(vm: string, sept: SecureEpt, gmem: GuestMemfd): void {
  const aug = sept.aug4k.words;
  const mem = gmem.allocated.words;
  for (let i = 0; i < aug.length; i++) {
    if ((aug[i]! & ~mem[i]!) !== 0) assert(false, 'a 4K page was AUGed without a guest_memfd folio', { vm, page: i * 32 });
  }
  for (let r = 0; r < sept.regions.length; r++) {
    const state = sept.regions[r] as Region;
    if (state !== Region.LeafPending && state !== Region.LeafMapped) continue;
    assert(gmem.allocated.countRange(r * PAGES_PER_2M, PAGES_PER_2M) === PAGES_PER_2M, 'a 2M leaf without its guest_memfd folio', { vm, region: r });
  }
}

/**
 * Every 4K page the TD has AUGed has PAMT backing: the host 2 MiB block behind each guest region
 * holds only this TD's guest_memfd pages, so its PAMT 4K entries in use are exactly the region's
 * 4K leaves (a 2M leaf keeps its PAMT at the 2M entry and has none).
 */
function checkTdPamt(vm: string, sept: SecureEpt, gmem: GuestMemfd, pamt: Pamt): void {
  for (let r = 0; r < gmem.hostBlocks.length; r++) {
    const block = gmem.hostBlocks[r]!;
    if (block < 0) continue;
    const leaves = sept.aug4k.countRange(r * PAGES_PER_2M, Math.min(PAGES_PER_2M, sept.pages - r * PAGES_PER_2M));
    const inUse = pamt.countOf(block * PAGES_PER_2M * 4096);
    if (leaves !== inUse) assert(false, 'a TD\'s 4K leaves and the PAMT 4K entries in use of their host block disagree', { vm, region: r, leaves, inUse });
    if (leaves > 0 && !pamt.hasPair(block * PAGES_PER_2M * 4096)) assert(false, 'TD pages without PAMT backing', { vm, region: r });
  }
}

/**
 * The SNP guest's RMP entries: in each of its regions, what is validated is assigned, what is
 * assigned has a folio, the region's ASID is the guest's; its RMPUPDATE and PVALIDATE counts
 * add up to what the RMP holds for it.
 */
function checkSnpBacking(vm: string, sev: KvmSev, gmem: GuestMemfd): void {
  const { rmp, counters, asid } = sev;
  let assigned = 0;
  let validated = 0;
  let entries2m = 0;
  for (let r = 0; r < gmem.hostBlocks.length; r++) {
    const block = gmem.hostBlocks[r]!;
    if (block < 0) continue;
    const h = block * PAGES_PER_2M;
    const g = r * PAGES_PER_2M;
    const a = rmp.assigned.countRange(h, PAGES_PER_2M);
    const v = rmp.validated.countRange(h, PAGES_PER_2M);
    assigned += a;
    validated += v;
    if (a > 0 && rmp.asid[block] !== asid) assert(false, 'RMP entries of a guest region carry another ASID', { vm, region: r, asid: rmp.asid[block] });
    for (let i = 0; i < PAGES_PER_2M; i++) {
      if (rmp.assigned.test(h + i) && !gmem.allocated.test(g + i)) assert(false, 'a page was assigned in the RMP without a guest_memfd folio', { vm, page: g + i });
    }
    if (rmp.size2m[block] === 1) {
      entries2m++;
      assert(a === PAGES_PER_2M, 'a 2M RMP entry over pages not all assigned', { vm, region: r });
    }
  }
  assert(counters.rmpupdate2m - counters.psmash === entries2m, 'RMPUPDATE(2M) count and 2M RMP entries disagree', { vm, updates: counters.rmpupdate2m, entries: entries2m });
  assert(counters.rmpupdate4k + PAGES_PER_2M * counters.rmpupdate2m - counters.rmpupdateShared === assigned, 'RMPUPDATE counts and assigned pages disagree', { vm, u4k: counters.rmpupdate4k, u2m: counters.rmpupdate2m, assigned });
  assert(sev.validatedPages() === validated, 'PVALIDATE counts and validated pages disagree', { vm, counted: sev.validatedPages(), validated });
}

/**
 * The VMM's RAM memslots: QEMU registers guest RAM as one block below 4 GiB and one above
 * ([qemu:hw/i386/pc_q35.c]); the guest's e820 RAM ranges inside each are merged, 2 MiB aligned.
 */
function mergeSlots(ram: readonly { start: number; end: number }[]): { start: number; end: number }[] {
  const FOUR_G = 2 ** 32;
  const out: { start: number; end: number }[] = [];
  const low = ram.filter((r) => r.start < FOUR_G);
  const high = ram.filter((r) => r.start >= FOUR_G);
  for (const part of [low, high]) {
    if (part.length === 0) continue;
    const start = Math.floor(Math.min(...part.map((r) => r.start)) / 2097152) * 2097152;
    const end = Math.ceil(Math.max(...part.map((r) => r.end)) / 2097152) * 2097152;
    out.push({ start, end });
  }
  return out;
}

function popcount32(x: number): number {
  let v = x - ((x >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (((v + (v >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}
