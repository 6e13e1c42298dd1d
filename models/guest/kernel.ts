import { assert, type Bandwidth, type Cpu, type Priority, type Proc, type Process, type Rng, type Sim } from '../../sim/index.ts';
import type { GuestPlatform } from './platform.ts';
import { AcceptLedger } from './accept_ledger.ts';
import { BackgroundAcceptor, type BackgroundAcceptorConfig } from './acceptor.ts';
import { ArchAccept } from './arch_accept.ts';
import { EFI_UNACCEPTED_UNIT_SIZE, PAGE_SIZE, SZ_1M, pfnOf, roundUp } from './constants.ts';
import { defaultGuestCosts, type GuestCosts } from './costs.ts';
import { EfiUnacceptedMemory, allocate_unaccepted_bitmap } from './efi_unaccepted_memory.ts';
import { IdleLoop } from './idle.ts';
import type { ThpEnabled } from './khugepaged.ts';
import { Memblock } from './memblock.ts';
import { buildMemoryMap, lowestBytes, subtractRanges, totalBytes, type MemoryMap, type PhysRange } from './memory_map.ts';
import { GuestMetrics } from './metrics.ts';
import { createZones, deferred_grow_zone, setDeferredBoundary } from './mm_init.ts';
import { PageAllocator, type AllocatorMode } from './page_alloc.ts';
import { UnacceptedMemory, type AcceptLockMode, type AcceptingListCheck } from './unaccepted_memory.ts';

/**
 * accept_memory= and option 3 of the unaccepted-memory changelog ([unaccepted-v7-2022-06]):
 * - `eager`: accept_memory=eager; everything is accepted at boot, in the pgdatinit/padata
 *   threads over all vCPUs with deferred struct page init (on the BSP without it);
 * - `lazy`: the upstream default, accept on demand from the page allocator;
 * - `background`: lazy plus background acceptor threads (never merged).
 */
export const ACCEPT_STRATEGIES = ['eager', 'lazy', 'background'] as const;
export type AcceptStrategy = (typeof ACCEPT_STRATEGIES)[number];

/** What firmware accepts before the kernel: a part (PcdLazyAcceptPartialMemorySize) or everything. */
export const FIRMWARE_ACCEPTS = ['lazy', 'eager'] as const;
export type FirmwareAccept = (typeof FIRMWARE_ACCEPTS)[number];

export interface GuestConfig {
  memoryBytes: number;
  vcpus: number;
  accept: AcceptStrategy;
  acceptLock: AcceptLockMode;
  /** accept_memory()'s accepting_list overlap test: upstream, or the v6.6 off-by-one. */
  acceptingListCheck: AcceptingListCheck;
  allocator: AllocatorMode;
  firmware: FirmwareAccept;
  /**
   * PcdLazyAcceptPartialMemorySize: firmware pre-accepts this much (lowest addresses first).
   * 512 MiB default ([linux:Documentation/arch/x86/tdx.rst]: "typically 512M";
   * [edk2:PcdLazyAcceptPartialMemorySize]: the IntelTdx config-B build).
   */
  firmwareAcceptBytes: number;
  /** CONFIG_DEFERRED_STRUCT_PAGE_INIT (distro kernels enable it). */
  deferredStructPageInit: boolean;
  /** The 2025 fix ([kirill-2025-03-wmark-zero]): accept one block per allocation while watermarks are zero. */
  wmarkZeroFix: boolean;
  /**
   * transparent_hugepage/enabled: with THP enabled khugepaged's start (a subsys initcall) raises
   * min_free_kbytes to its recommended minimum and so every watermark (khugepaged.ts).
   */
  thp: ThpEnabled;
  /** CONFIG_PREEMPT_VOLUNTARY (distro default) or CONFIG_PREEMPT (`full`). */
  preempt: 'voluntary' | 'full';
  /** CONFIG_HZ: timer ticks per second; an idle vCPU exits at each tick. */
  hz: number;
  /**
   * CONFIG_NO_HZ_IDLE: once the tick has switched to one-shot mode (clocksource_done_booting(),
   * an fs_initcall), idle vCPUs stop their tick and no longer exit; before that they tick.
   */
  nohzIdle: boolean;
  /** Each tick re-arms IA32_TSC_DEADLINE, an exit to KVM on TDX and SNP (false: a free re-arm). */
  tickRearmExit: boolean;
  /**
   * The `skew_tick=1` boot option: each CPU's tick is offset by cpu x (TICK_NSEC / 2) / nr_cpus
   * instead of all CPUs ticking at the same instant ([linux:kernel/time/tick-sched.c]).
   */
  skewTick: boolean;
  /**
   * Seeds vary what a real boot varies (today: the phase of the guest's tick grid against the
   * boot's events, drawn per VM). false: every seed gives the same run.
   */
  variation: boolean;
  background: BackgroundAcceptorConfig;
  costs: GuestCosts;
}

export function defaultGuestConfig(overrides: Partial<GuestConfig> = {}): GuestConfig {
  return {
    memoryBytes: 4 * 1024 * SZ_1M,
    vcpus: 4,
    accept: 'lazy',
    acceptLock: 'dropped',
    acceptingListCheck: 'upstream',
    allocator: 'upstream',
    firmware: 'lazy',
    firmwareAcceptBytes: 512 * SZ_1M,
    deferredStructPageInit: true,
    wmarkZeroFix: true,
    // CONFIG_TRANSPARENT_HUGEPAGE_MADVISE=y: Ubuntu's distro default.
    thp: 'madvise',
    preempt: 'voluntary',
    // [slow-many-vcpu-td-boot]: idle APs' HLT exits at a 1 kHz tick load the host; [distro-kernel-config].
    hz: 1000,
    nohzIdle: false,
    tickRearmExit: true,
    skewTick: false,
    variation: true,
    background: { threads: 1, paceNs: 0 },
    costs: defaultGuestCosts,
    ...overrides,
  };
}

/**
 * The guest-physical address space a guest of `memoryBytes` needs covered by its host side: up
 * to the highest RAM address of its memory map, in whole 2 MiB.
 */
export function guestPhysBytes(memoryBytes: number): number {
  return roundUp(buildMemoryMap(memoryBytes).maxAddr, EFI_UNACCEPTED_UNIT_SIZE);
}

/** What a guest kernel runs on: its vCPUs (index = vCPU number) and the platform below it. */
export interface GuestHardware {
  vcpus: Cpu[];
  platform: GuestPlatform;
  /**
   * Who the guest is among several on one host: its threads are named `<threadPrefix>swapper/0`
   * (`vm1/swapper/0`), their spans go to `service` (`guest/vm1`), and its random streams are
   * named `<streamPrefix>guest...` (`vm.1.guest.app.0.arrivals`), so adding a VM changes no
   * other VM's draws. Defaults: '', 'guest', '' (a guest alone).
   */
  identity?: { threadPrefix: string; service: string; streamPrefix: string };
}

/**
 * A confidential guest kernel on the vCPUs its VM gives it: the firmware hand-off (memory map, the EFI unaccepted
 * memory table), accept_memory() with its lock, memblock, the page allocator, the idle loops
 * and (with accept=background) the acceptor threads. The boot workload drives it through time.
 */
export class GuestKernel {
  readonly vcpus: Cpu[];
  readonly platform: GuestPlatform;
  /** Its names among several guests (GuestHardware.identity). */
  readonly identity: { threadPrefix: string; service: string; streamPrefix: string };
  readonly map: MemoryMap;
  /** RAM firmware accepts before the kernel runs, and RAM it marks EFI_UNACCEPTED_MEMORY. */
  readonly firmwareAccepted: PhysRange[];
  readonly efiUnaccepted: PhysRange[];
  readonly table: EfiUnacceptedMemory | null;
  readonly ledger: AcceptLedger;
  readonly metrics: GuestMetrics;
  readonly arch: ArchAccept;
  readonly unaccepted: UnacceptedMemory;
  readonly memblock: Memblock;
  readonly allocator: PageAllocator;
  readonly idle: IdleLoop;
  readonly acceptor: BackgroundAcceptor | null;
  readonly costs: GuestCosts;
  /** Set at shutdown: idle and acceptor threads finish. */
  stopping = false;
  /**
   * Guest DRAM bandwidth (the platform's memoryBandwidth: the host's memory, shared with its
   * clears and zeroing), for the guest's own page clearing; null: each CPU clears at its own rate.
   */
  readonly memory: Bandwidth | null;

  constructor(
    readonly sim: Sim,
    readonly config: GuestConfig,
    hardware: GuestHardware,
  ) {
    assert(Number.isInteger(config.vcpus) && config.vcpus >= 1, 'vcpus must be a positive integer', config.vcpus);
    // The acceptor loops over zone->unaccepted_pages, which the seed-era allocator does not have.
    assert(!(config.accept === 'background' && config.allocator === 'seed'), 'accept=background needs allocator=upstream (the seed-era allocator keeps unaccepted memory in the buddy lists)');
    this.costs = config.costs;
    assert(hardware.vcpus.length === config.vcpus, 'the guest was given another number of vCPUs than it is configured for', { given: hardware.vcpus.length, vcpus: config.vcpus });
    this.vcpus = hardware.vcpus;
    this.platform = hardware.platform;
    this.identity = hardware.identity ?? { threadPrefix: '', service: 'guest', streamPrefix: '' };
    this.map = buildMemoryMap(config.memoryBytes);
    this.memory = this.platform.memoryBandwidth ?? null;
    const fwBytes = config.firmware === 'eager' ? config.memoryBytes : config.firmwareAcceptBytes;
    this.firmwareAccepted = lowestBytes(this.map.ram, fwBytes);
    this.efiUnaccepted = subtractRanges(this.map.ram, this.firmwareAccepted);
    this.table = allocate_unaccepted_bitmap(this.efiUnaccepted);
    this.ledger = new AcceptLedger(this.map.maxAddr);
    this.metrics = new GuestMetrics(config.vcpus);
    this.arch = new ArchAccept(sim, this.platform, this.vcpus, this.ledger, this.metrics);
    this.unaccepted = new UnacceptedMemory(sim, this.table, this.arch, config.acceptLock, this.costs, this.metrics, config.acceptingListCheck);
    this.memblock = new Memblock(this.map.ram);
    const zones = createZones(this);
    setDeferredBoundary(zones, config.deferredStructPageInit);
    this.allocator = new PageAllocator(sim, zones, this.unaccepted, this.ledger, this.metrics, this.costs, config.vcpus, {
      mode: config.allocator,
      lazyAccept: config.accept !== 'eager',
      wmarkZeroFix: config.wmarkZeroFix,
      preemptVoluntary: config.preempt === 'voluntary',
    });
    this.allocator.deferredGrow = (zone) => deferred_grow_zone(this, zone);
    this.idle = new IdleLoop(this);
    this.acceptor = config.accept === 'background' ? new BackgroundAcceptor(this, config.background) : null;
  }

  /** Spawns a guest thread on vCPU `vcpu`, named with the guest's prefix (`vm1/swapper/0`). */
  spawn<T>(body: Proc<T>, name: string, vcpu: number, options: { priority?: Priority; daemon?: boolean } = {}): Process<T> {
    return this.sim.spawn(body, { name: this.identity.threadPrefix + name, cpu: this.vcpus[vcpu]!, service: this.identity.service, ...options });
  }

  /** The guest's random stream `name` (`guest.app.0.arrivals`), under its VM's prefix. */
  rng(name: string): Rng {
    return this.sim.rng(this.identity.streamPrefix + name);
  }

  /** The vCPU index of the running thread. */
  currentVcpu(): number {
    return this.arch.currentVcpu();
  }

  /** Pages of RAM the guest has. */
  get ramPages(): number {
    return pfnOf(totalBytes(this.map.ram));
  }

  /** Stops the idle and acceptor threads; the run can then drain. */
  shutdown(): void {
    this.stopping = true;
    this.idle.stop();
  }

  /**
   * cond_resched(): a voluntary preemption point. A kernel thread of a lower class (the
   * background acceptor) gives its vCPU to a waiting normal thread here; without one it would
   * keep the vCPU from one block to the next.
   */
  *cond_resched(): Proc<void> {
    yield this.sim.compute(this.costs.condReschedNs);
    yield this.sim.condResched();
  }

  /**
   * Touches (first write: anonymous fault + clear_page) `pages` pages on the running thread. The
   * clear costs whole nanoseconds per 4 KiB so that n pages at once cost exactly n single pages.
   */
  *touchPages(pages: number): Proc<void> {
    const c = this.costs;
    const clearNsPer4K = Math.max(1, Math.round((PAGE_SIZE / c.clearPageBytesPerSec) * 1e9));
    yield this.sim.compute(pages * c.faultNs);
    if (this.memory !== null) yield this.memory.transfer(pages * PAGE_SIZE, (PAGE_SIZE * 1e9) / clearNsPer4K);
    else yield this.sim.compute(pages * clearNsPer4K);
  }

  /**
   * End-of-run balance: the ledger against the bitmap, the allocator's lists against its
   * counters, every page of RAM accounted for. (The host side checks its own.)
   */
  checkInvariants(heldPages: number): void {
    this.allocator.checkInvariants();
    assert(this.ledger.inFlight === 0, 'arch_accept_memory() calls still under way at the end of the run', this.ledger.inFlight);
    this.checkBitmapAgainstLedger();
    this.checkFreeMemoryAccepted();
    const free = this.allocator.freePagesTotal();
    const reserved = pfnOf(this.memblock.reservedBytesIn(0, this.map.maxAddr));
    let uninitialised = 0;
    for (const z of this.allocator.zones) {
      if (z.first_deferred_pfn >= z.end_pfn) continue;
      for (const r of this.memblock.freeRanges()) {
        uninitialised += Math.max(0, Math.min(z.end_pfn, pfnOf(r.end)) - Math.max(z.first_deferred_pfn, pfnOf(r.start)));
      }
    }
    const managed = this.allocator.zones.reduce((n, z) => n + z.managed_pages, 0);
    assert(managed + reserved + uninitialised === this.ramPages, 'RAM pages lost between memblock and the buddy allocator', { managed, reserved, uninitialised, ram: this.ramPages });
    assert(free + this.allocator.allocatedPages === managed, 'free + allocated pages do not add up to managed pages', { free, allocated: this.allocator.allocatedPages, managed });
    assert(this.allocator.allocatedPages === heldPages, 'allocated pages disagree with what the workloads hold', { allocated: this.allocator.allocatedPages, heldPages });
  }

  /** A set bit means nothing of that unit was ever accepted; a clear bit, all its RAM was. */
  private checkBitmapAgainstLedger(): void {
    const t = this.table;
    const unitPages = EFI_UNACCEPTED_UNIT_SIZE / PAGE_SIZE;
    for (const r of this.map.ram) {
      for (let addr = r.start; addr < r.end; ) {
        const unitStart = addr - (addr % EFI_UNACCEPTED_UNIT_SIZE);
        const end = Math.min(r.end, unitStart + EFI_UNACCEPTED_UNIT_SIZE);
        const inBitmap = t !== null && addr >= t.phys_base && end <= t.limit;
        const set = inBitmap && t!.test_bit(t!.unitOf(addr));
        if (set) {
          assert(this.ledger.pagesInUnit(unitStart / EFI_UNACCEPTED_UNIT_SIZE) === 0, 'a unit marked unaccepted was accepted', { unit: unitStart });
        } else {
          assert(this.ledger.isAccepted(addr, end), 'RAM the bitmap calls accepted was never accepted', { addr, end, unitPages });
        }
        addr = end;
      }
    }
  }

  /** Upstream: every block in the buddy lists is accepted; seed era: every unmarked block is. */
  private checkFreeMemoryAccepted(): void {
    for (const z of this.allocator.zones) {
      const fa = z.free_area;
      fa.lists.forEach((list, order) => {
        for (const pfn of list) {
          if (fa.unaccepted.has(pfn)) continue;
          const start = pfn * PAGE_SIZE;
          assert(this.ledger.isAccepted(start, start + (PAGE_SIZE << order)), 'a free buddy block is not accepted', { zone: z.name, pfn, order });
        }
      });
      for (const pfn of z.unaccepted_pages.toArray()) {
        assert(this.unaccepted.containsUnaccepted(pfn * PAGE_SIZE, (pfn + 1024) * PAGE_SIZE), 'a block on unaccepted_pages has nothing left to accept', { zone: z.name, pfn });
      }
    }
  }
}
