import type { Cpu, Proc, Sim } from '../../sim/index.ts';
import { assert } from '../../sim/assert.ts';
import type { GuestConversionPlatform, GuestPlatform } from '../guest/platform.ts';
import type { GuestMemEncrypt } from '../guest/set_memory.ts';
import { IO_TLB_MIN_SLABS, IO_TLB_SIZE, type Swiotlb, type SwiotlbSlot } from '../guest/swiotlb.ts';

const PAGE = 4096;
const PMD = 2 * 1024 * 1024;

/** A confidential guest's DMA users, as the convert experiment runs them. */
export interface DmaWorkloadConfig {
  memoryBytes: number;
  poolBytes: number;
  /** '2m': the pool (and dynamic pools) 2 MiB aligned (the RFC); '4k': page aligned, at an offset memblock's earlier allocations leave. */
  align: '4k' | '2m';
  /** dma_alloc_coherent() from the SWIOTLB pool (the RFC) instead of page allocator pages converted per allocation. */
  dmaAllocFromSwiotlb: boolean;
  dynamic: boolean;
  /** Guest memory the driver's pages come from (the page allocator's share for DMA), at the top of RAM. */
  arenaBytes: number;
  coherent: { ratePerSec: number; bytes: number; lifetimeNs: number };
  io: { ratePerSec: number; bytes: number; latencyNs: number };
  durationNs: number;
  streamPrefix: string;
  threadPrefix: string;
}

/**
 * Where memblock leaves the 4K-aligned pool below its 2 MiB boundary: ESTIMATE 77 pages
 * [estimate:swiotlb-placement] (earlier memblock allocations in the same range end at an
 * arbitrary page).
 */
export const SWIOTLB_MISALIGN_PAGES = 77;

/** What the workload counted (`dma.*` in the experiment). */
export interface DmaCounters {
  coherentAllocs: number;
  coherentFailures: number;
  ios: number;
  ioFailures: number;
  arenaFailures: number;
}

/**
 * A simple stand-in for the page allocator's DMA pages: naturally aligned power-of-two blocks of
 * 4K pages, first fit from a rotating cursor, in a guest range accepted at boot. (The buddy
 * allocator would hand pages from its free lists; packing them low keeps 4K conversions inside
 * few 2 MiB ranges, the favourable case for the host.)
 */
export class DmaArena {
  readonly used: Uint8Array;
  private cursor = 0;
  constructor(
    readonly start: number,
    readonly bytes: number,
  ) {
    this.used = new Uint8Array(bytes / PAGE);
  }

  alloc(bytes: number, alignBytes = PAGE): number | null {
    const n = 2 ** Math.ceil(Math.log2(Math.ceil(bytes / PAGE)));
    const align = Math.max(n, alignBytes / PAGE);
    const total = this.used.length;
    for (let k = 0; k < total; k += align) {
      const i = (Math.ceil(this.cursor / align) * align + k) % total;
      if (i + n > total) continue;
      let free = true;
      for (let j = i; j < i + n; j++) if (this.used[j] === 1) (free = false), (j = i + n);
      if (!free) continue;
      this.used.fill(1, i, i + n);
      this.cursor = i + n;
      return this.start + i * PAGE;
    }
    return null;
  }

  free(addr: number, bytes: number): void {
    const n = 2 ** Math.ceil(Math.log2(Math.ceil(bytes / PAGE)));
    const i = (addr - this.start) / PAGE;
    for (let j = i; j < i + n; j++) assert(this.used[j] === 1, 'DMA arena page freed twice', addr);
    this.used.fill(0, i, i + n);
  }
}

type Platform = GuestPlatform & GuestConversionPlatform;

/**
 * The DMA side of a confidential guest: boot (acceptance of the pool's and the arena's memory,
 * then swiotlb_update_mem_attributes(): the whole pool decrypted at once), then for
 * `durationNs` a driver allocating and freeing coherent buffers (dma_alloc_coherent() with
 * force_dma_unencrypted(): set_memory_decrypted() per allocation, dma_set_encrypted() on free,
 * [linux:kernel/dma/direct.c]) and an I/O stream bouncing through SWIOTLB
 * (swiotlb_tbl_map_single(): slots by area, the copy, the device's latency, unmap), both
 * Poisson arrivals spread over the vCPUs. A pool that runs out fails the mapping (an I/O error)
 * or, with CONFIG_SWIOTLB_DYNAMIC, takes a transient pool and grows by a new pool in a worker.
 */
export class DmaWorkload {
  readonly counters: DmaCounters = { coherentAllocs: 0, coherentFailures: 0, ios: 0, ioFailures: 0, arenaFailures: 0 };
  readonly arena: DmaArena;
  poolStart = 0;
  bootDoneNs = -1;
  finished = false;
  private growing = false;

  constructor(
    readonly sim: Sim,
    readonly platform: Platform,
    readonly vcpus: readonly Cpu[],
    readonly enc: GuestMemEncrypt,
    readonly swiotlb: Swiotlb,
    readonly config: DmaWorkloadConfig,
  ) {
    this.arena = new DmaArena(config.memoryBytes - config.arenaBytes, config.arenaBytes);
    const end = Math.floor(Math.min(2 ** 31, config.memoryBytes - config.arenaBytes) / PMD) * PMD;
    this.poolStart = end - config.poolBytes - (config.align === '4k' ? SWIOTLB_MISALIGN_PAGES * PAGE : 0);
    assert(this.poolStart >= 0, 'the SWIOTLB pool does not fit below the DMA arena', config);
  }

  start(): void {
    this.sim.spawn(this.boot(), { name: `${this.config.threadPrefix}swapper/0`, cpu: this.vcpus[0]!, service: 'guest' });
  }

  private *boot(): Proc<void> {
    const { sim, config, vcpus } = this;
    // Acceptance of what boot hands out (memblock for the pool, the page allocator for the arena), in parallel.
    const ranges: [number, number][] = [[Math.floor(this.poolStart / PMD) * PMD, Math.ceil((this.poolStart + config.poolBytes) / PMD) * PMD], [this.arena.start, this.arena.start + this.arena.bytes]];
    const done = vcpus.map((cpu, v) => sim.spawn(this.acceptShare(v, ranges), { name: `${config.threadPrefix}accept/${v}`, cpu, service: 'guest' }));
    for (const p of done) yield p.join();
    // swiotlb_update_mem_attributes() from mem_encrypt_init().
    yield* this.enc.set_memory_decrypted(0, this.poolStart, config.poolBytes);
    this.swiotlb.addPool(this.poolStart, config.poolBytes, false);
    this.bootDoneNs = sim.now;
    const endNs = sim.now + config.durationNs;
    if (config.coherent.ratePerSec > 0) sim.spawn(this.arrivals('coherent', config.coherent.ratePerSec, endNs, (v) => this.coherentBuffer(v)), { name: `${config.threadPrefix}dma-driver` });
    if (config.io.ratePerSec > 0) sim.spawn(this.arrivals('io', config.io.ratePerSec, endNs, (v) => this.ioRequest(v)), { name: `${config.threadPrefix}io-submit` });
  }

  private *acceptShare(v: number, ranges: [number, number][]): Proc<void> {
    const n = this.vcpus.length;
    for (const [a, b] of ranges) {
      const units = (b - a) / PMD;
      const lo = a + Math.floor((units * v) / n) * PMD;
      const hi = a + Math.floor((units * (v + 1)) / n) * PMD;
      if (hi > lo) yield* this.platform.arch_accept_memory(v, lo, hi, 'runtime');
    }
  }

  /** Poisson arrivals until `endNs`; each request runs on the next vCPU in turn. */
  private *arrivals(kind: string, ratePerSec: number, endNs: number, body: (v: number) => Proc<void>): Proc<void> {
    const sim = this.sim;
    const rng = sim.rng(`${this.config.streamPrefix}guest.dma.${kind}.arrivals`);
    const live: { join(): ReturnType<Sim["sleep"]> }[] = [];
    let i = 0;
    for (;;) {
      const gap = Math.max(1, Math.round(rng.exponential(1e9 / ratePerSec)));
      if (sim.now + gap >= endNs) break;
      yield sim.sleep(gap);
      const v = i++ % this.vcpus.length;
      live.push(sim.spawn(body(v), { name: `${this.config.threadPrefix}${kind}/${i}`, cpu: this.vcpus[v]!, service: 'guest' }));
    }
    for (const p of live) yield p.join();
  }

  /** dma_alloc_coherent() .. dma_free_coherent() of one buffer. */
  private *coherentBuffer(v: number): Proc<void> {
    const { config, platform, enc, swiotlb, sim } = this;
    const bytes = config.coherent.bytes;
    this.counters.coherentAllocs++;
    if (config.dmaAllocFromSwiotlb) {
      const slot = yield* this.mapSlots(v, bytes);
      if (slot === null) {
        this.counters.coherentFailures++;
        return;
      }
      const addr = swiotlb.slotAddress(slot);
      yield* platform.touch(v, pageDown(addr), pageUp(addr + bytes), true);
      yield sim.sleep(config.coherent.lifetimeNs);
      yield* this.unmapSlots(v, slot);
      return;
    }
    const addr = this.arena.alloc(bytes);
    if (addr === null) {
      this.counters.arenaFailures++;
      return;
    }
    const size = 2 ** Math.ceil(Math.log2(Math.ceil(bytes / PAGE))) * PAGE;
    if (!(yield* enc.set_memory_decrypted(v, addr, size))) assert(false, 'dma_alloc_coherent: set_memory_decrypted failed', addr);
    yield* platform.touch(v, addr, addr + size, true);
    yield sim.sleep(config.coherent.lifetimeNs);
    if (!(yield* enc.set_memory_encrypted(v, addr, size))) assert(false, 'dma_free_coherent: set_memory_encrypted failed (the page would leak)', addr);
    // The next user of the page uses it private: it must be accepted again.
    yield* platform.touch(v, addr, addr + size, false);
    this.arena.free(addr, size);
  }

  /** One I/O: map (bounce in), the device, unmap. */
  private *ioRequest(v: number): Proc<void> {
    const { config, platform, swiotlb, sim } = this;
    const bytes = config.io.bytes;
    this.counters.ios++;
    const slot = yield* this.mapSlots(v, bytes);
    if (slot === null) {
      this.counters.ioFailures++;
      return;
    }
    const addr = swiotlb.slotAddress(slot);
    yield* platform.touch(v, pageDown(addr), pageUp(addr + bytes), true);
    yield* platform.pay_kicks(v);
    yield* swiotlb.bounce(bytes);
    yield sim.sleep(config.io.latencyNs);
    yield* platform.pay_kicks(v);
    yield* swiotlb.bounce(bytes);
    yield* this.unmapSlots(v, slot);
  }

  /** swiotlb_find_slots() with the dynamic fallbacks: a transient pool now, a new pool in the background. */
  private *mapSlots(v: number, bytes: number): Proc<SwiotlbSlot | null> {
    const { swiotlb, config, enc } = this;
    const slot = yield* swiotlb.find_slots(v, bytes);
    if (slot !== null) return slot;
    if (!config.dynamic) {
      swiotlb.counters.failures++;
      return null;
    }
    if (!this.growing) {
      this.growing = true;
      this.sim.spawn(this.dynAlloc(), { name: `${config.threadPrefix}kworker/swiotlb_dyn_alloc`, cpu: this.vcpus[(v + 1) % this.vcpus.length]!, service: 'guest' });
    }
    const size = Math.max(PAGE, pageUp(bytes));
    const addr = this.arena.alloc(size, config.align === '2m' ? PMD : PAGE);
    if (addr === null) {
      swiotlb.counters.failures++;
      return null;
    }
    const alloc = 2 ** Math.ceil(Math.log2(size / PAGE)) * PAGE;
    yield* enc.set_memory_decrypted(v, addr, alloc);
    const pool = swiotlb.addPool(addr, alloc, true);
    return swiotlb.takeTransient(pool);
  }

  private *unmapSlots(v: number, slot: SwiotlbSlot): Proc<void> {
    const { swiotlb, enc } = this;
    yield* swiotlb.release_slots(v, slot);
    if (!slot.pool.transient) return;
    const bytes = slot.pool.nslabs * IO_TLB_SIZE;
    swiotlb.removePool(slot.pool);
    yield* enc.set_memory_encrypted(v, slot.pool.start, bytes);
    this.arena.free(slot.pool.start, bytes);
  }

  /** swiotlb_dyn_alloc(): a new pool of the default size, halved until it fits (at least IO_TLB_MIN_SLABS), decrypted, added. */
  private *dynAlloc(): Proc<void> {
    const { config, enc, swiotlb } = this;
    let bytes = config.poolBytes;
    let addr: number | null = null;
    while (bytes >= IO_TLB_MIN_SLABS * IO_TLB_SIZE && (addr = this.arena.alloc(bytes, config.align === '2m' ? PMD : PAGE)) === null) bytes /= 2;
    if (addr !== null) {
      const v = this.vcpus.indexOf(this.sim.current!.cpu!);
      yield* enc.set_memory_decrypted(v, addr, bytes);
      swiotlb.addPool(addr, bytes, false);
    }
    this.growing = false;
  }
}

function pageDown(x: number): number {
  return Math.floor(x / PAGE) * PAGE;
}
function pageUp(x: number): number {
  return Math.ceil(x / PAGE) * PAGE;
}
