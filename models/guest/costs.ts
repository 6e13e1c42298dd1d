import { MS, US, S, MiB } from '../../sim/index.ts';

/**
 * Costs of the guest's own work (everything that is not arch_accept_memory(), whose cost the
 * host side models). Each value cites its entry in docs/sources.md: a source where one has a
 * number, else an ESTIMATE (such as [estimate:firmware-init]) with the reasoning. Times are nanoseconds of one vCPU.
 */
export interface GuestCosts {
  /** OVMF/TDVF from reset to ExitBootServices, without acceptance. */
  firmwareInitNs: number;
  /** EFI stub + decompressor: extract_kernel() of the compressed image. */
  decompressNs: number;
  /** Bytes the decompressor accepts for the kernel image (extract_kernel: output + needed_size). */
  kernelImageBytes: number;
  /** start_kernel() work before mm_core_init() that is not modelled step by step (setup_arch, ACPI, ...). */
  earlyInitNs: number;
  /** memmap_init / deferred_init_memmap: initialising one struct page (__init_single_page). */
  structPageInitNs: number;
  /** __free_pages_core() + __free_one_page() bookkeeping for one block handed to the buddy allocator. */
  freeBlockNs: number;
  /** Bringing up one AP (INIT/SIPI or the TDX/SNP wakeup, AP trampoline, cpu_init, cpuhp steps). */
  apBringupNs: number;
  /** Page-allocator calls the BSP makes for one AP during bring-up (idle task, per-cpu kthreads). */
  apBringupAllocations: number;
  /** Page-allocator calls between mm_core_init() and smp_init() (slab bootstrap, vmalloc, page tables). */
  preSmpAllocations: number;
  /** Page-allocator calls between page_alloc_init_late() and the postcore initcall (pure/core initcalls). */
  coreInitcallAllocations: number;
  /** Kernel work of the initcalls after postcore up to run_init_process(), excluding allocations. */
  initcallsNs: number;
  /** Memory the kernel allocates from the postcore initcall to run_init_process() (slab, initramfs unpack). */
  lateKernelBytes: number;
  /** Userspace work from /sbin/init to a shell, spread over min(vcpus, 4) threads. */
  userspaceNs: number;
  /** Memory userspace allocates and touches from /sbin/init to a shell. */
  userspaceBytes: number;
  /** One order-0 page from the pcp list (get_page_from_freelist fast path, incl. the cond_accept_memory check). */
  allocFastNs: number;
  /** rmqueue_bulk(): taking one page off the buddy free lists under zone->lock. */
  rmqueuePerPageNs: number;
  /** Freeing one page back to the buddy (free_pcppages_bulk / __free_one_page share). */
  freePerPageNs: number;
  /** A page fault on anonymous memory, excluding clear_page(). */
  faultNs: number;
  /** clear_page() rate of one CPU, bytes per second. */
  clearPageBytesPerSec: number;
  /**
   * The guest side of one timer tick on an idle vCPU (the interrupt, tick_sched_timer, RCU and
   * scheduler tick, back to HLT), before the exit the platform models.
   */
  idleTickNs: number;
  /**
   * The guest's #VE (TDX) or #VC (SEV-ES/SNP) handler for a WRMSR the hardware does not
   * virtualise: exception entry, instruction decode, the TDCALL or GHCB set-up, return.
   */
  msrExceptionNs: number;
  /** cond_resched(): the need_resched check at a voluntary preemption point. */
  condReschedNs: number;
  /** Bookkeeping inside unaccepted_memory_lock: walking accepting_list, scanning the bitmap. */
  acceptBookkeepingNs: number;
}

export const defaultGuestCosts: GuestCosts = {
  // ESTIMATE 2 s [estimate:firmware-init]: TDVF/OVMF with lazy accept reaches the kernel in a few seconds;
  // [R5] bounds the whole lazy 64 GB boot at < 15 s, which leaves room for firmware + kernel + userspace.
  firmwareInitNs: 2 * S,
  // ESTIMATE 300 ms [estimate:decompress]: a ~12 MiB zstd/gzip bzImage inflating to ~60 MiB at 200-400 MB/s.
  decompressNs: 300 * MS,
  // ESTIMATE 64 MiB [estimate:kernel-image]: decompressed vmlinux plus BSS and the relocation area (needed_size) of a distro kernel.
  kernelImageBytes: 64 * MiB,
  // ESTIMATE 200 ms [estimate:early-init]: setup_arch, ACPI table parsing, console and early IRQ setup in a VM.
  earlyInitNs: 200 * MS,
  // ESTIMATE 6 ns/page [estimate:struct-page-init]: [linux-commit:e44431498f5f] (parallel
  // deferred_init_memmap) reports ~600 ms for 384 GiB per node single-threaded on Skylake.
  structPageInitNs: 6,
  // ESTIMATE 100 ns [estimate:free-block]: a handful of struct page writes and list operations per block.
  freeBlockNs: 100,
  // ESTIMATE 5 ms [estimate:ap-bringup]: Linux SMP bring-up in a VM takes a few ms per CPU (cpuhp states, calibration skipped).
  apBringupNs: 5 * MS,
  // ESTIMATE 48 [estimate:ap-bringup]: fork_idle() (stack: 4 vmalloc pages + page tables) and ~7 per-cpu kthreads
  // (cpuhp, migration, ksoftirqd, kworker/N:0, kworker/N:0H, rcu, idle_inject) at ~5 pages each.
  apBringupAllocations: 48,
  // ESTIMATE 1500 [estimate:boot-allocations]: slab bootstrap (kmem_cache_init), vmalloc_init, per-cpu setup, page tables.
  preSmpAllocations: 1500,
  // ESTIMATE 100 [estimate:boot-allocations]: ~100 pure and core initcalls in a distro config; most allocations are served
  // from slab caches, so about one page-allocator call each.
  coreInitcallAllocations: 100,
  // ESTIMATE 700 ms [estimate:initcalls]: arch..late initcalls of a VM with virtio devices (initcall_debug traces of
  // small VMs show most initcalls in microseconds, a few in tens of ms).
  initcallsNs: 700 * MS,
  // ESTIMATE 128 MiB [estimate:initcalls]: slab caches, initramfs unpacked into page cache, driver buffers.
  lateKernelBytes: 128 * MiB,
  // ESTIMATE 1.5 s [estimate:userspace-boot]: systemd to a login shell in a minimal guest image.
  userspaceNs: 1500 * MS,
  // ESTIMATE 256 MiB [estimate:userspace-boot]: systemd, journald, udev, a shell and their page cache.
  userspaceBytes: 256 * MiB,
  // ESTIMATE 100 ns [estimate:page-allocator]: a pcp-list hit in the page allocator.
  allocFastNs: 100,
  // ESTIMATE 50 ns [estimate:page-allocator]: one __rmqueue_smallest() under zone->lock.
  rmqueuePerPageNs: 50,
  // ESTIMATE 80 ns [estimate:page-allocator]: free_unref_page() plus its share of free_pcppages_bulk().
  freePerPageNs: 80,
  // ESTIMATE 1 us [estimate:anon-fault]: anonymous page fault entry, page table update, rmap, LRU add.
  faultNs: 1 * US,
  // 12.9 GB/s: per-CPU page clearing rate, the baseline of [arora-2025-10-clear-pages] (AMD Milan).
  clearPageBytesPerSec: 12.9e9,
  // ESTIMATE 1.5 us [estimate:ve-msr-guest]: the guest's part of [cvm-eval-vmexit]'s 3.85 us for a
  // #VE-driven CPUID through KVM: the exit that injects the #VE (0.65 us, as the in-module CPUID),
  // TDG.VP.VEINFO.GET (0.65 us), #VE entry and IRET (~0.2 us); the exit to KVM and back is the host's.
  msrExceptionNs: 1_500,
  // ESTIMATE 2 us [estimate:idle-tick-guest]: an idle tick's interrupt entry, tick_sched_timer(), RCU and scheduler tick.
  idleTickNs: 2 * US,
  // ESTIMATE 20 ns [estimate:cond-resched]: reading the thread flags (and, if set, the switch the scheduler accounts).
  condReschedNs: 20,
  // ESTIMATE 100 ns [estimate:accept-bookkeeping]: a short list walk and a bitmap scan under a cache-hot spinlock.
  acceptBookkeepingNs: 100,
};
