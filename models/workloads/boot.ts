import { assert, type Proc, type Process, type Sim } from '../../sim/index.ts';
import { EFI_UNACCEPTED_UNIT_SIZE, PAGE_SIZE, PAGES_PER_SECTION, SZ_1M, SZ_4G, STRUCT_PAGE_BYTES, pfnOf, roundDown } from '../guest/constants.ts';
import { early_accept_memory, process_unaccepted_memory } from '../guest/efi_unaccepted_memory.ts';
import type { GuestKernel } from '../guest/kernel.ts';
import { hugepage_init } from '../guest/khugepaged.ts';
import { deferred_init_memmap, memblock_free_all, memmap_init } from '../guest/mm_init.ts';
import type { PhysRange } from '../guest/memory_map.ts';
import type { Extents } from '../guest/page_alloc.ts';
import { applicationPhase, countPages, type ApplicationConfig, type ApplicationResult } from './application.ts';

/**
 * The boot of a confidential guest from VM start to a shell, then an optional application phase:
 * firmware (with its own pre-accept, in parallel over the vCPUs like TDVF's MpAccept,
 * [edk2:MpAcceptMemoryResourceRange]), the EFI
 * stub's hand-off of the unaccepted-memory bitmap, the decompressor, start_kernel with its
 * memblock allocations, memblock_free_all, SMP bring-up (watermarks still zero), deferred
 * struct-page init, the initcalls (watermarks set by the postcore initcall), /sbin/init and
 * userspace up to a shell. Milestones are recorded in the guest's metrics.
 */

/** LOAD_PHYSICAL_ADDR: where the decompressor puts the kernel without KASLR (16 MiB). */
const LOAD_PHYSICAL_ADDR = 16 * SZ_1M;
/** ESTIMATE 256 KiB per CPU [estimate:percpu-area]: "percpu: Embedded 64 pages/cpu" in distro kernels' boot logs. */
const PERCPU_UNIT_BYTES = 256 * 1024;
/** ESTIMATE 16 MiB [estimate:early-init]: early page tables, ACPI copies, the log buffer and e820 tables, in 4 allocations. */
const MISC_MEMBLOCK_BYTES = 16 * SZ_1M;
/** IO_TLB_DEFAULT_SIZE and the CVM rule: 6% of RAM clamped to [64 MiB, 1 GiB] ([linux:include/linux/swiotlb.h], [linux:arch/x86/mm/mem_encrypt.c mem_encrypt_setup_arch]). */
const IO_TLB_DEFAULT_SIZE = 64 * SZ_1M;

export interface BootOptions {
  application?: ApplicationConfig | null;
  /**
   * The VMM's setup of the VM (memslots, memory attributes, the TD build or SNP launch), which
   * the firmware's first instruction waits for; null or absent: the VM is ready at VM start.
   */
  after?: Process<void> | null;
}

export interface BootResult {
  application: ApplicationResult | null;
  /** Pages the kernel and userspace keep (for the end-of-run balance). */
  heldPages: number;
}

function milestone(k: GuestKernel, name: string): void {
  k.metrics.milestones.set(name, k.sim.now);
  k.sim.instant(name, { 'cvmsim.level': 'phase' });
}

/** Runs `body` as a phase span. */
function* phase<T>(k: GuestKernel, name: string, body: Proc<T>): Proc<T> {
  const id = k.sim.opBegin(name, { 'cvmsim.level': 'phase' });
  try {
    return yield* body;
  } finally {
    k.sim.opEnd(id);
  }
}

/** The whole boot, run as the BSP's thread. */
export function* bootWorkload(k: GuestKernel, options: BootOptions = {}): Proc<BootResult> {
  const held: Extents = [];
  milestone(k, 'vm_start');
  yield* waitForSetup(k, options.after ?? null);
  yield* phase(k, 'firmware', firmware(k));
  milestone(k, 'exit_boot_services');
  yield* phase(k, 'efi_stub', efiStub(k));
  yield* phase(k, 'decompressor', decompressor(k));
  milestone(k, 'start_kernel');
  yield* phase(k, 'start_kernel', startKernel(k, held));
  yield* phase(k, 'smp_init', smpInit(k, held));
  milestone(k, 'smp_done');
  yield* phase(k, 'page_alloc_init_late', deferred_init_memmap(k));
  milestone(k, 'deferred_init_done');
  yield* phase(k, 'do_basic_setup', doBasicSetup(k, held));
  milestone(k, 'init');
  yield* phase(k, 'userspace', userspace(k, held));
  milestone(k, 'userspace');
  const application = options.application ? yield* applicationPhase(k, options.application) : null;
  if (application !== null) milestone(k, 'application_done');
  k.shutdown();
  return { application, heldPages: countPages(held) + (application?.heldPages ?? 0) };
}

/**
 * VM start to the firmware's first instruction: the VMM's setup (a phase of the BSP's thread,
 * which waits halted), then the `vm_setup_done` milestone.
 */
export function* waitForSetup(k: GuestKernel, setup: Process<void> | null): Proc<void> {
  if (setup !== null) yield* phase(k, 'vm_setup', (function* () { yield setup.join(); })());
  milestone(k, 'vm_setup_done');
}

/**
 * TDVF/OVMF: its own initialisation, then the accept of what it pre-accepts, split over all
 * vCPUs (MpAccept). `firmware=eager` (PcdLazyAcceptPartialMemorySize = 0,
 * [edk2:PcdLazyAcceptPartialMemorySize]) accepts everything.
 */
export function* firmware(k: GuestKernel): Proc<void> {
  const sim = k.sim;
  yield sim.compute(k.costs.firmwareInitNs);
  const n = k.vcpus.length;
  const shares: PhysRange[][] = Array.from({ length: n }, () => []);
  for (const r of k.firmwareAccepted) splitForCpus(r, n).forEach((piece, i) => { if (piece.start < piece.end) shares[i]!.push(piece); });
  const workers = shares.map((ranges, i) =>
    k.spawn(firmwareAcceptWorker(k, ranges), i === 0 ? 'tdvf/bsp' : `tdvf/ap${i}`, i));
  for (const w of workers) yield w.join();
}

/** An even split of [start, end) into n pieces on 2 MiB boundaries (the first takes the unaligned head). */
function splitForCpus(r: PhysRange, n: number): PhysRange[] {
  const size = r.end - r.start;
  const share = Math.max(EFI_UNACCEPTED_UNIT_SIZE, roundDown(Math.ceil(size / n), EFI_UNACCEPTED_UNIT_SIZE));
  const out: PhysRange[] = [];
  let start = r.start;
  for (let i = 0; i < n; i++) {
    const end = i === n - 1 ? r.end : Math.max(start, Math.min(r.end, roundDown(start + share, EFI_UNACCEPTED_UNIT_SIZE)));
    out.push({ start, end });
    start = end;
  }
  return out;
}

function* firmwareAcceptWorker(k: GuestKernel, ranges: PhysRange[]): Proc<void> {
  for (const r of ranges) yield* k.arch.accept(r.start, r.end, 'runtime', 'firmware');
}

/** The EFI stub: record EFI_UNACCEPTED_MEMORY ranges in the bitmap, accepting unaligned edges now. */
export function* efiStub(k: GuestKernel): Proc<void> {
  const t = k.table;
  if (t === null) return;
  for (const r of k.efiUnaccepted) {
    yield* process_unaccepted_memory(t, r.start, r.end, (s, e) => k.arch.accept(s, e, 'early', 'efi_stub'));
  }
}

/** extract_kernel(): accept the memory the kernel is decompressed into, then inflate it. */
function* decompressor(k: GuestKernel): Proc<void> {
  const size = k.costs.kernelImageBytes;
  yield* early_accept_memory(k.table, LOAD_PHYSICAL_ADDR, size, (s, e) => k.arch.accept(s, e, 'early', 'decompressor'));
  yield k.sim.compute(k.costs.decompressNs);
  k.memblock.reserve(LOAD_PHYSICAL_ADDR, LOAD_PHYSICAL_ADDR + size);
}

/**
 * start_kernel() up to rest_init(): setup_arch's memblock allocations (the memmap, the SWIOTLB
 * pool, per-cpu areas), memmap_init(), mm_core_init() -> memblock_free_all(), then the early
 * page allocations made while watermarks are zero.
 */
function* startKernel(k: GuestKernel, held: Extents): Proc<void> {
  const sim = k.sim;
  yield sim.compute(k.costs.earlyInitNs);
  const sections = presentSections(k);
  const memmapBytes = sections * PAGES_PER_SECTION * STRUCT_PAGE_BYTES;
  yield* k.memblock.alloc(k.unaccepted, memmapBytes, EFI_UNACCEPTED_UNIT_SIZE);
  yield* k.memblock.alloc(k.unaccepted, swiotlbBytes(k.config.memoryBytes), PAGE_SIZE, SZ_4G);
  yield* k.memblock.alloc(k.unaccepted, PERCPU_UNIT_BYTES * k.vcpus.length, PAGE_SIZE);
  for (let i = 0; i < 4; i++) yield* k.memblock.alloc(k.unaccepted, MISC_MEMBLOCK_BYTES / 4, PAGE_SIZE);
  yield* memmap_init(k);
  yield* memblock_free_all(k);
  k.idle.start(0);
  yield* kernelAllocations(k, k.costs.preSmpAllocations, held);
}

/** Sections (128 MiB) with RAM: sparse_init() allocates the memmap for each. */
function presentSections(k: GuestKernel): number {
  const sections = new Set<number>();
  for (const r of k.map.ram) {
    for (let s = Math.floor(pfnOf(r.start) / PAGES_PER_SECTION); s * PAGES_PER_SECTION < pfnOf(r.end); s++) sections.add(s);
  }
  return sections.size;
}

/** mem_encrypt_setup_arch(): 6% of RAM clamped to [64 MiB, 1 GiB], rounded up to a power of two. */
export function swiotlbBytes(memoryBytes: number): number {
  const size = Math.min(1024 * SZ_1M, Math.max(IO_TLB_DEFAULT_SIZE, Math.floor((memoryBytes * 6) / 100)));
  return 2 ** Math.ceil(Math.log2(size));
}

/** `count` single-page allocations on the running thread (each its own alloc_pages() call). */
function* kernelAllocations(k: GuestKernel, count: number, held: Extents): Proc<void> {
  const vcpu = k.currentVcpu();
  for (let i = 0; i < count; i++) yield* k.allocator.alloc_pages(vcpu, 1, held);
}

/**
 * smp_init(): lockup_detector_init() has run, then each AP in turn: the BSP's allocations for
 * it (idle task, per-cpu kthreads) and its startup on its own vCPU; once up it idles.
 */
function* smpInit(k: GuestKernel, held: Extents): Proc<void> {
  k.unaccepted.watchdogRunning = true;
  for (let cpu = 1; cpu < k.vcpus.length; cpu++) {
    yield* kernelAllocations(k, k.costs.apBringupAllocations, held);
    const ap = k.spawn(apStartup(k), `cpuhp/${cpu}`, cpu);
    yield ap.join();
    k.idle.start(cpu);
  }
}

function* apStartup(k: GuestKernel): Proc<void> {
  yield k.sim.compute(k.costs.apBringupNs);
}

/**
 * do_basic_setup(): pure and core initcalls (watermarks still zero), the postcore
 * init_per_zone_wmark_min(), the subsys hugepage_init() (khugepaged raising min_free_kbytes and
 * the watermarks), then the remaining initcalls with their allocations. The few arch initcalls
 * between postcore and subsys are part of the later initcalls' time and allocations.
 */
function* doBasicSetup(k: GuestKernel, held: Extents): Proc<void> {
  const sim = k.sim;
  yield* kernelAllocations(k, k.costs.coreInitcallAllocations, held);
  k.allocator.init_per_zone_wmark_min();
  milestone(k, 'postcore_initcall');
  k.acceptor?.start();
  yield* hugepage_init(k.allocator, k.config.thp);
  milestone(k, 'subsys_initcall');
  // fs_initcall clocksource_done_booting(): the tick may now go one-shot (and stop when idle).
  k.idle.clocksourceDoneBooting();
  milestone(k, 'clocksource_done_booting');
  const steps = 16;
  const pages = Math.floor(k.costs.lateKernelBytes / PAGE_SIZE / steps);
  const vcpu = k.currentVcpu();
  for (let i = 0; i < steps; i++) {
    yield sim.compute(k.costs.initcallsNs / steps);
    yield* k.allocator.alloc_pages(vcpu, pages, held);
  }
}

/** /sbin/init to a shell: up to four threads of work, each allocating and touching its share. */
function* userspace(k: GuestKernel, held: Extents): Proc<void> {
  const sim = k.sim;
  const n = Math.min(k.vcpus.length, 4);
  const steps = 16;
  const pages = Math.floor(k.costs.userspaceBytes / PAGE_SIZE / n / steps);
  const threads = [];
  for (let i = 0; i < n; i++) {
    threads.push(k.spawn((function* () {
      const vcpu = k.currentVcpu();
      // Each thread's own list: allocations of concurrent threads must not interleave in one array.
      const mine: Extents = [];
      for (let s = 0; s < steps; s++) {
        yield sim.compute(k.costs.userspaceNs / n / steps);
        const got = yield* k.allocator.alloc_pages(vcpu, pages, mine);
        yield* k.touchPages(got);
      }
      for (const x of mine) held.push(x);
    })(), `systemd/${i}`, i));
  }
  for (const t of threads) yield t.join();
}

/** Starts the boot of `k` on its vCPU 0, `delayNs` after the current time. */
export function startBoot(k: GuestKernel, options: BootOptions = {}, delayNs = 0): Process<BootResult> {
  const body = delayNs > 0 ? delayed(k, delayNs, bootWorkload(k, options)) : bootWorkload(k, options);
  return k.spawn(body, 'swapper/0', 0);
}

function* delayed<T>(k: GuestKernel, ns: number, body: Proc<T>): Proc<T> {
  yield k.sim.sleep(ns);
  return yield* body;
}

/** A boot that ran to its end: its result, after the guest's invariants are checked. */
export function finishedBoot(k: GuestKernel, boot: Process<BootResult>): BootResult {
  assert(boot.state === 'done', 'the boot did not finish', boot.state);
  const result = boot.result!;
  k.checkInvariants(result.heldPages);
  return result;
}

/** Boots `k` on vCPU 0, runs the simulation to its end and checks the guest's invariants. */
export function runGuest(sim: Sim, k: GuestKernel, options: BootOptions = {}): BootResult {
  const boot = startBoot(k, options);
  sim.run();
  sim.finishRun();
  return finishedBoot(k, boot);
}
