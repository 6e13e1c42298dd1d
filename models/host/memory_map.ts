import { Cpu, RwLock, countMetric, type MetricSpecs, type Proc, type Sim } from '../../sim/index.ts';
import { assert } from '../../sim/assert.ts';
import { SIZE_2M, hex } from '../arch/units.ts';
import { HostMemory, type HostMemoryNode, type OwnerId } from './host_memory.ts';

/**
 * The host's physical memory map and memory hotplug ([linux:mm/memory_hotplug.c],
 * [linux:drivers/base/memory.c], [linux:mm/memblock.c]):
 *
 * - RAM ranges, each on a NUMA node, of a kind: `dram` (DIMMs), `cxl` (a CXL.mem expander, a
 *   CPU-less node) or `kmem` (device-dax memory, NVDIMM or soft-reserved, handed to the page
 *   allocator by the dax/kmem driver with add_memory_driver_managed()), convertible (inside the
 *   TDX module's CMRs) or not. Boot RAM is the e820 map and memblock; hot-pluggable ranges are
 *   absent until added.
 * - Hot-add (add_memory() for ACPI, add_memory_driver_managed() for kmem): under
 *   mem_hotplug_begin() (mem_hotplug_lock, a percpu rw-semaphore, for write) the range joins
 *   memblock (CONFIG_ARCH_KEEP_MEMBLOCK), its struct pages are initialised, and its 128 MiB
 *   memory blocks appear offline.
 * - Online, per memory block (online_pages(), with auto-online as distributions configure it):
 *   under mem_hotplug_begin(), the memory notifier chain is called with MEM_GOING_ONLINE; a
 *   NOTIFY_BAD answer fails the online with -EBUSY (MEM_CANCEL_ONLINE); else the pages go to
 *   the page allocator (here: HostMemory frees the range) and MEM_ONLINE follows.
 * - get_online_mems() / put_online_mems(): mem_hotplug_lock for read (TDX module initialisation
 *   holds it while it builds its memory list).
 *
 * HostMemory keeps one span per node; holes in a span and memory not online are held by the
 * owner `absent`, so the allocator hands out online RAM only.
 */

export const MEMORY_KINDS = ['dram', 'cxl', 'kmem'] as const;
export type MemoryKind = (typeof MEMORY_KINDS)[number];

/** memory_block_size_bytes() on x86-64 (MIN_MEMORY_BLOCK_SIZE, 128 MiB). */
export const MEMORY_BLOCK_SIZE = 128 * 2 ** 20;

/** Notifier return values (include/linux/notifier.h): NOTIFY_BAD = NOTIFY_STOP_MASK | 0x0002. */
export const NOTIFY_OK = 0x0001;
export const NOTIFY_BAD = 0x8002;
export const MEMORY_EVENTS = ['MEM_GOING_ONLINE', 'MEM_ONLINE', 'MEM_CANCEL_ONLINE'] as const;
export type MemoryEvent = (typeof MEMORY_EVENTS)[number];

export const EBUSY = 16;
export const EPERM = 1;
export const EINVAL = 22;
export const ENOMEM = 12;
export const ENOSPC = 28;
export const EIO = 5;

export interface MemRange {
  start: number;
  bytes: number;
  node: number;
  kind: MemoryKind;
  /** Inside the CMRs the TDX module reports. */
  convertible: boolean;
}

/** A memblock.memory region (merged with an adjacent one of the same node and flags). */
export interface MemblockRegion {
  start: number;
  end: number;
  nid: number;
  /** MEMBLOCK_DRIVER_MANAGED (add_memory_driver_managed()). */
  driverManaged: boolean;
}

export interface MemoryMapConfig {
  /** Boot RAM (e820 E820_TYPE_RAM), 2 MiB aligned, in address order. */
  boot: MemRange[];
  /** Ranges that may be hot-added later (ACPI SRAT hot-pluggable, CXL windows, dax devices); 128 MiB aligned. */
  hotpluggable: MemRange[];
}

/** A memory notifier: the answer to `event` for [start, start + bytes). */
export type MemoryNotifier = (event: MemoryEvent, start: number, bytes: number) => number;

/** Memory-hotplug costs, ns. */
export interface MemoryHotplugCosts {
  /** Struct page initialisation per 4K at hot-add (memmap_init_range()). [estimate:struct-page-init]: 6 ns. */
  structPageNs: number;
  /** Freeing one MAX_PAGE_ORDER (4 MiB) block to the buddy allocator at online. [estimate:free-block]: 100 ns. */
  freeBlockNs: number;
}

export const MEMORY_HOTPLUG_COSTS: MemoryHotplugCosts = { structPageNs: 6, freeBlockNs: 100 };

/** What MemoryMap.metrics() writes (`host.memory_map`). */
export const MEMORY_MAP_METRICS: MetricSpecs = {
  boot_bytes: countMetric('bytes', 'RAM in the e820 map at boot'),
  added_bytes: countMetric('bytes', 'hot-added memory (in memblock, offline or online)'),
  online_bytes: countMetric('bytes', 'memory the page allocator holds (boot RAM and onlined blocks)'),
  blocks_onlined: countMetric('blocks', '128 MiB memory blocks onlined after boot'),
  online_refused: countMetric('blocks', 'memory blocks whose MEM_GOING_ONLINE a notifier answered NOTIFY_BAD'),
  memblock_regions: countMetric('regions', 'memblock.memory regions at the end'),
};

/** The host's memory map, memblock, memory blocks and the hotplug paths; one per host. */
export class MemoryMap {
  readonly memory: HostMemory;
  readonly memHotplugLock: RwLock;
  readonly e820: readonly MemRange[];
  readonly ranges: readonly MemRange[];
  readonly memblock: MemblockRegion[] = [];
  readonly absent: OwnerId;
  readonly costs: MemoryHotplugCosts;
  /** Per hot-pluggable range (by index in config.hotpluggable): 'absent' | 'added'. */
  private readonly added: boolean[];
  /** Online 128 MiB blocks of hot-added ranges, by start address. */
  private readonly onlineBlocks = new Set<number>();
  private readonly notifiers: { name: string; fn: MemoryNotifier }[] = [];
  readonly counters = { blocksOnlined: 0, onlineRefused: 0, addedBytes: 0 };
  /** The kernel thread that runs hotplug (kacpi_hotplug / the dax driver's probe). */
  readonly cpu: Cpu;

  constructor(
    readonly sim: Sim,
    readonly config: MemoryMapConfig,
    costs: Partial<MemoryHotplugCosts> = {},
  ) {
    this.costs = { ...MEMORY_HOTPLUG_COSTS, ...costs };
    const all = [...config.boot, ...config.hotpluggable].sort((a, b) => a.start - b.start);
    for (let i = 0; i < all.length; i++) {
      const r = all[i]!;
      assert(r.bytes > 0 && r.start % SIZE_2M === 0 && r.bytes % SIZE_2M === 0, 'memory map: a range is 2 MiB aligned', { start: hex(r.start), bytes: r.bytes });
      if (i > 0) assert(r.start >= all[i - 1]!.start + all[i - 1]!.bytes, 'memory map: ranges overlap', hex(r.start));
    }
    for (const r of config.hotpluggable) assert(r.start % MEMORY_BLOCK_SIZE === 0 && r.bytes % MEMORY_BLOCK_SIZE === 0, 'memory map: a hot-pluggable range is made of 128 MiB memory blocks', hex(r.start));
    this.ranges = all;
    this.e820 = config.boot;
    this.memory = new HostMemory(sim, { nodes: nodeSpans(all) });
    this.absent = this.memory.registerOwner('absent');
    // Holes between a node's ranges, and every hot-pluggable range, are not allocator memory.
    let prevEnd = -1;
    let prevNode = -1;
    for (const r of all) {
      if (r.node === prevNode && r.start > prevEnd) this.memory.takeRange(this.absent, 'kernel', prevEnd, r.start - prevEnd);
      prevEnd = r.start + r.bytes;
      prevNode = r.node;
    }
    for (const r of config.hotpluggable) this.memory.takeRange(this.absent, 'kernel', r.start, r.bytes);
    // The first MiB (BIOS, real-mode trampoline) is memblock-reserved and never reaches the allocator (2 MiB here).
    const first = all[0]!;
    if (first.start === 0) this.memory.takeRange(this.absent, 'kernel', 0, SIZE_2M);
    for (const r of config.boot) this.memblockAdd(r, false);
    this.added = config.hotpluggable.map(() => false);
    this.memHotplugLock = new RwLock(sim, 'mem_hotplug_lock');
    this.cpu = new Cpu(sim, 'host/kacpi_hotplug');
  }

  /** register_memory_notifier(). */
  registerNotifier(name: string, fn: MemoryNotifier): void {
    this.notifiers.push({ name, fn });
  }

  /** memblock_add_node(): insert, merging with an adjacent region of the same node and flags. */
  private memblockAdd(r: MemRange, driverManaged: boolean): void {
    const region: MemblockRegion = { start: r.start, end: r.start + r.bytes, nid: r.node, driverManaged };
    const list = this.memblock;
    let i = 0;
    while (i < list.length && list[i]!.start < region.start) i++;
    list.splice(i, 0, region);
    for (let j = list.length - 1; j > 0; j--) {
      const a = list[j - 1]!;
      const b = list[j]!;
      if (a.end === b.start && a.nid === b.nid && a.driverManaged === b.driverManaged) {
        a.end = b.end;
        list.splice(j, 1);
      }
    }
  }

  /** get_online_mems(). */
  getOnlineMems(): ReturnType<RwLock['acquire']> {
    return this.memHotplugLock.acquire('shared');
  }

  putOnlineMems(): void {
    this.memHotplugLock.release('shared');
  }

  /** The hot-pluggable range `i`. */
  hotpluggable(i: number): MemRange {
    const r = this.config.hotpluggable[i];
    assert(r !== undefined, 'memory map: no such hot-pluggable range', i);
    return r;
  }

  /**
   * add_memory() / add_memory_driver_managed() of hot-pluggable range `i`, on the calling
   * thread: mem_hotplug_begin(), memblock_add_node(), the memmap of the range, its memory
   * blocks offline, mem_hotplug_done().
   */
  *addMemory(i: number): Proc<number> {
    const r = this.hotpluggable(i);
    assert(!this.added[i], 'memory map: range added twice', hex(r.start));
    const sim = this.sim;
    const asked = sim.now;
    yield this.memHotplugLock.acquire('exclusive');
    const waited = sim.now - asked;
    const id = sim.observer !== null ? sim.opBegin(r.kind === 'kmem' ? 'add_memory_driver_managed' : 'add_memory', { start: hex(r.start), bytes: r.bytes }) : 0;
    yield sim.compute((r.bytes / 4096) * this.costs.structPageNs);
    this.memblockAdd(r, r.kind === 'kmem');
    this.added[i] = true;
    this.counters.addedBytes += r.bytes;
    if (id !== 0) sim.opEnd(id);
    this.memHotplugLock.release('exclusive');
    return waited;
  }

  /**
   * Online every memory block of added range `i` (auto-online), each under mem_hotplug_begin():
   * MEM_GOING_ONLINE through the notifier chain; NOTIFY_BAD stops the chain, MEM_CANCEL_ONLINE
   * follows and the block stays offline (-EBUSY); else online_pages() gives the block's pages to
   * the allocator and MEM_ONLINE follows. Returns the bytes onlined, the blocks refused and the
   * time spent waiting for mem_hotplug_lock.
   */
  *onlineRange(i: number): Proc<{ onlined: number; refused: number; waitNs: number }> {
    const r = this.hotpluggable(i);
    assert(this.added[i], 'memory map: online of a range not added', hex(r.start));
    const sim = this.sim;
    let onlined = 0;
    let refused = 0;
    let waitNs = 0;
    for (let a = r.start; a < r.start + r.bytes; a += MEMORY_BLOCK_SIZE) {
      const asked = sim.now;
      yield this.memHotplugLock.acquire('exclusive');
      waitNs += sim.now - asked;
      const id = sim.observer !== null ? sim.opBegin('online_pages', { start: hex(a) }) : 0;
      if (this.notify('MEM_GOING_ONLINE', a, MEMORY_BLOCK_SIZE) === NOTIFY_BAD) {
        this.notify('MEM_CANCEL_ONLINE', a, MEMORY_BLOCK_SIZE);
        refused++;
        this.counters.onlineRefused++;
        if (id !== 0) sim.opEnd(id, { error: -EBUSY });
      } else {
        yield sim.compute((MEMORY_BLOCK_SIZE / (4 * 2 ** 20)) * this.costs.freeBlockNs);
        this.memory.freeRange(a, MEMORY_BLOCK_SIZE, this.absent);
        this.onlineBlocks.add(a);
        this.counters.blocksOnlined++;
        onlined += MEMORY_BLOCK_SIZE;
        this.notify('MEM_ONLINE', a, MEMORY_BLOCK_SIZE);
        if (id !== 0) sim.opEnd(id);
      }
      this.memHotplugLock.release('exclusive');
    }
    return { onlined, refused, waitNs };
  }

  /** memory_notify(): the chain in registration order, stopped by NOTIFY_BAD. */
  private notify(event: MemoryEvent, start: number, bytes: number): number {
    for (const n of this.notifiers) if (n.fn(event, start, bytes) === NOTIFY_BAD) return NOTIFY_BAD;
    return NOTIFY_OK;
  }

  /** Is the memory at `hpa` online (boot RAM or an onlined block)? */
  isOnline(hpa: number): boolean {
    for (const r of this.e820) if (hpa >= r.start && hpa < r.start + r.bytes) return true;
    return this.onlineBlocks.has(Math.floor(hpa / MEMORY_BLOCK_SIZE) * MEMORY_BLOCK_SIZE);
  }

  /** The range holding `hpa`, or undefined (a hole). */
  rangeOf(hpa: number): MemRange | undefined {
    return this.ranges.find((r) => hpa >= r.start && hpa < r.start + r.bytes);
  }

  get bootBytes(): number {
    return this.e820.reduce((n, r) => n + r.bytes, 0);
  }

  get onlineBytes(): number {
    return this.bootBytes + this.onlineBlocks.size * MEMORY_BLOCK_SIZE;
  }

  metrics(prefix: string, out: Record<string, number>): void {
    out[`${prefix}.added_bytes`] = this.counters.addedBytes;
    out[`${prefix}.blocks_onlined`] = this.counters.blocksOnlined;
    out[`${prefix}.boot_bytes`] = this.bootBytes;
    out[`${prefix}.memblock_regions`] = this.memblock.length;
    out[`${prefix}.online_bytes`] = this.onlineBytes;
    out[`${prefix}.online_refused`] = this.counters.onlineRefused;
  }

  /** memblock is sorted and disjoint; the mem_hotplug_lock is free at the end. */
  checkInvariants(): void {
    for (let i = 1; i < this.memblock.length; i++) assert(this.memblock[i]!.start >= this.memblock[i - 1]!.end, 'memblock regions overlap or are out of order', this.memblock[i]);
    assert(this.memHotplugLock.holderNames().length === 0, 'mem_hotplug_lock held at the end of the run', this.memHotplugLock.describe());
    this.memory.checkInvariants();
  }
}

/** One HostMemory node per NUMA node: the span from its first range to its last. */
function nodeSpans(ranges: readonly MemRange[]): HostMemoryNode[] {
  const spans = new Map<number, { start: number; end: number }>();
  for (const r of ranges) {
    const s = spans.get(r.node);
    if (s === undefined) spans.set(r.node, { start: r.start, end: r.start + r.bytes });
    else s.end = Math.max(s.end, r.start + r.bytes);
  }
  const nodes = [...spans.keys()].sort((a, b) => a - b);
  nodes.forEach((n, i) => assert(n === i, 'memory map: NUMA nodes are numbered 0.. in address order', nodes));
  const out = nodes.map((n) => ({ start: spans.get(n)!.start, bytes: spans.get(n)!.end - spans.get(n)!.start }));
  for (let i = 1; i < out.length; i++) assert(out[i]!.start >= out[i - 1]!.start + out[i - 1]!.bytes, 'memory map: a NUMA node\'s ranges interleave with another node\'s', i);
  return out;
}
