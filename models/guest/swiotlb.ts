import { Spinlock, countMetric, measureMetric, type MetricSpecs, type Proc, type Sim } from '../../sim/index.ts';
import { assert } from '../../sim/assert.ts';

/** A slot is 2 KiB (IO_TLB_SHIFT 11); a mapping is at most IO_TLB_SEGSIZE = 128 slots (256 KiB) ([linux:include/linux/swiotlb.h]). */
export const IO_TLB_SHIFT = 11;
export const IO_TLB_SIZE = 1 << IO_TLB_SHIFT;
export const IO_TLB_SEGSIZE = 128;
/** IO_TLB_DEFAULT_SIZE: 64 MiB. */
export const IO_TLB_DEFAULT_SIZE = 64 * 1024 * 1024;
/** IO_TLB_MIN_SLABS: a dynamic pool is at least 1 MiB. */
export const IO_TLB_MIN_SLABS = (1024 * 1024) >> IO_TLB_SHIFT;

/**
 * The CVM pool size: mem_encrypt_setup_arch() takes `percent` of RAM clamped to
 * [IO_TLB_DEFAULT_SIZE, cap] ([linux:arch/x86/mm/mem_encrypt.c]: 6%, cap 1 GiB; the RFC
 * [annapurve-2024-01-swiotlb-2m]: 8%, cap 1.25 GiB); swiotlb_adjust_size() rounds the slab count
 * up to a power of two when areas are used (round_up_default_nslabs(), [linux:kernel/dma/swiotlb.c]):
 * a 4 GiB guest gets 256 MiB ([github:intel/tdx-linux#5]).
 */
export function swiotlbPoolBytes(memoryBytes: number, percent: number, capBytes: number): number {
  const size = Math.min(Math.max(Math.floor((memoryBytes * percent) / 100), IO_TLB_DEFAULT_SIZE), capBytes);
  let nslabs = Math.ceil(size / IO_TLB_SIZE);
  nslabs = Math.ceil(nslabs / IO_TLB_SEGSIZE) * IO_TLB_SEGSIZE;
  return 2 ** Math.ceil(Math.log2(nslabs)) * IO_TLB_SIZE;
}

/** Areas: one per possible CPU rounded up to a power of two, fewer if an area would hold less than IO_TLB_SEGSIZE slots (limit_nareas()). */
export function swiotlbAreas(cpus: number, nslabs: number): number {
  let n = 2 ** Math.ceil(Math.log2(Math.max(1, cpus)));
  while (n > 1 && nslabs / n < IO_TLB_SEGSIZE) n /= 2;
  return n;
}

/** Costs of the bounce path. ESTIMATE [estimate:swiotlb-costs]: a slot search under the area lock 200 ns; the bounce memcpy at 10 GB/s per CPU. */
export interface SwiotlbCosts {
  searchNs: number;
  copyBytesPerSec: number;
}
export const SWIOTLB_COSTS: SwiotlbCosts = { searchNs: 200, copyBytesPerSec: 10e9 };

/** One pool (struct io_tlb_pool): its guest range, its areas (each with a spinlock and a search cursor), a used flag per slot. */
export interface SwiotlbPool {
  start: number;
  nslabs: number;
  nareas: number;
  transient: boolean;
  used: Uint8Array;
  /** Free slots per IO_TLB_SEGSIZE segment, to skip full segments. */
  segFree: Uint16Array;
  areaIndex: number[];
  locks: Spinlock[];
  usedSlots: number;
}

export interface SwiotlbSlot {
  pool: SwiotlbPool;
  index: number;
  nslots: number;
}

/** What Swiotlb.metrics() writes (`vm1.guest.swiotlb`). */
export const SWIOTLB_METRICS: MetricSpecs = {
  pool_bytes: countMetric('bytes', 'bounce-buffer pools (the boot pool and dynamic pools) at the end'),
  boot_pool_bytes: countMetric('bytes', 'the pool sized at boot'),
  peak_used_bytes: countMetric('bytes', 'the most slot bytes in use at once'),
  maps: countMetric('mappings', 'swiotlb_tbl_map_single() that found slots'),
  map_failures: countMetric('mappings', 'mappings that found no slot: I/O errors (DMA_MAPPING_ERROR)'),
  dynamic_pools: countMetric('pools', 'pools added at runtime by swiotlb_dyn_alloc()'),
  transient_pools: countMetric('pools', 'transient pools made for one mapping'),
  bounced_bytes: countMetric('bytes', 'bytes copied through bounce buffers'),
  'area_lock.wait_ns': measureMetric('ns', 'time spent waiting for area locks'),
};

/**
 * SWIOTLB in a confidential guest ([linux:kernel/dma/swiotlb.c]): pools of 2 KiB slots, each
 * pool split into areas with their own spinlock and search cursor; a mapping takes contiguous
 * slots inside one IO_TLB_SEGSIZE segment, searching from the area of the calling CPU and then
 * the others; with CONFIG_SWIOTLB_DYNAMIC a failed search makes a transient pool for the mapping
 * and schedules a new pool (swiotlb_dyn_alloc()); without it the mapping fails. Pool memory
 * comes from the caller (the boot pool from memblock, dynamic pools from the page allocator),
 * which converts it to shared.
 */
export class Swiotlb {
  readonly pools: SwiotlbPool[] = [];
  readonly counters = { maps: 0, failures: 0, dynamicPools: 0, transientPools: 0, bounced: 0 };
  usedSlots = 0;
  peakSlots = 0;
  bootPoolBytes = 0;
  readonly costs: SwiotlbCosts;

  constructor(
    readonly sim: Sim,
    readonly name: string,
    readonly cpus: number,
    readonly dynamic: boolean,
    costs: Partial<SwiotlbCosts> = {},
  ) {
    this.costs = { ...SWIOTLB_COSTS, ...costs };
  }

  addPool(start: number, bytes: number, transient: boolean): SwiotlbPool {
    const nslabs = bytes / IO_TLB_SIZE;
    assert(Number.isInteger(nslabs) && nslabs > 0, 'a SWIOTLB pool is a whole number of slots', bytes);
    const nareas = transient ? 1 : swiotlbAreas(this.cpus, nslabs);
    const segs = Math.ceil(nslabs / IO_TLB_SEGSIZE);
    const segFree = new Uint16Array(segs);
    for (let s = 0; s < segs; s++) segFree[s] = Math.min(IO_TLB_SEGSIZE, nslabs - s * IO_TLB_SEGSIZE);
    const id = this.pools.length;
    const pool: SwiotlbPool = {
      start, nslabs, nareas, transient, used: new Uint8Array(nslabs), segFree,
      areaIndex: Array.from({ length: nareas }, (_, a) => (a * nslabs) / nareas),
      locks: Array.from({ length: nareas }, (_, a) => new Spinlock(this.sim, `${this.name}/io_tlb_pool${id}/area${a}`)),
      usedSlots: 0,
    };
    this.pools.push(pool);
    if (this.pools.length === 1) this.bootPoolBytes = bytes;
    if (transient) this.counters.transientPools++;
    else if (this.pools.length > 1) this.counters.dynamicPools++;
    return pool;
  }

  removePool(pool: SwiotlbPool): void {
    assert(pool.usedSlots === 0, 'a SWIOTLB pool removed with slots in use', pool.start);
    const i = this.pools.indexOf(pool);
    assert(i >= 0, 'removing a pool that is not in the list', pool.start);
    this.pools.splice(i, 1);
  }

  /** swiotlb_search_area() over the non-transient pools from the calling CPU's area; null when nothing fits. */
  *find_slots(cpu: number, bytes: number): Proc<SwiotlbSlot | null> {
    const nslots = Math.ceil(bytes / IO_TLB_SIZE);
    assert(nslots <= IO_TLB_SEGSIZE, 'a SWIOTLB mapping larger than IO_TLB_SEGSIZE slots', bytes);
    for (const pool of this.pools) {
      if (pool.transient) continue;
      for (let k = 0; k < pool.nareas; k++) {
        const a = (cpu + k) & (pool.nareas - 1);
        const lock = pool.locks[a]!;
        yield lock.acquire({ irqsave: true });
        yield this.sim.compute(this.costs.searchNs);
        const index = searchArea(pool, a, nslots);
        if (index >= 0) {
          take(pool, index, nslots);
          lock.release({ irqrestore: true });
          this.noteUse(nslots);
          this.counters.maps++;
          return { pool, index, nslots };
        }
        lock.release({ irqrestore: true });
      }
    }
    return null;
  }

  /** The whole of a transient pool, for one mapping. */
  takeTransient(pool: SwiotlbPool): SwiotlbSlot {
    take(pool, 0, pool.nslabs);
    this.noteUse(pool.nslabs);
    this.counters.maps++;
    return { pool, index: 0, nslots: pool.nslabs };
  }

  *release_slots(cpu: number, slot: SwiotlbSlot): Proc<void> {
    const { pool, index, nslots } = slot;
    const a = pool.transient ? 0 : Math.min(pool.nareas - 1, Math.floor((index * pool.nareas) / pool.nslabs));
    const lock = pool.locks[a]!;
    yield lock.acquire({ irqsave: true });
    for (let i = index; i < index + nslots; i++) {
      assert(pool.used[i] === 1, 'a SWIOTLB slot freed twice', { pool: pool.start, slot: i });
      pool.used[i] = 0;
      pool.segFree[Math.floor(i / IO_TLB_SEGSIZE)]!++;
    }
    pool.usedSlots -= nslots;
    this.usedSlots -= nslots;
    lock.release({ irqrestore: true });
    void cpu;
  }

  /** The bounce copy (swiotlb_bounce()) on the calling CPU. */
  *bounce(bytes: number): Proc<void> {
    this.counters.bounced += bytes;
    yield this.sim.compute(Math.round((bytes / this.costs.copyBytesPerSec) * 1e9));
  }

  slotAddress(slot: SwiotlbSlot): number {
    return slot.pool.start + slot.index * IO_TLB_SIZE;
  }

  private noteUse(nslots: number): void {
    this.usedSlots += nslots;
    if (this.usedSlots > this.peakSlots) this.peakSlots = this.usedSlots;
  }

  poolBytes(): number {
    let b = 0;
    for (const p of this.pools) if (!p.transient) b += p.nslabs * IO_TLB_SIZE;
    return b;
  }

  metrics(prefix: string, out: Record<string, number>): void {
    const c = this.counters;
    out[`${prefix}.pool_bytes`] = this.poolBytes();
    out[`${prefix}.boot_pool_bytes`] = this.bootPoolBytes;
    out[`${prefix}.peak_used_bytes`] = this.peakSlots * IO_TLB_SIZE;
    out[`${prefix}.maps`] = c.maps;
    out[`${prefix}.map_failures`] = c.failures;
    out[`${prefix}.dynamic_pools`] = c.dynamicPools;
    out[`${prefix}.transient_pools`] = c.transientPools;
    out[`${prefix}.bounced_bytes`] = c.bounced;
    let wait = 0;
    for (const p of this.pools) for (const l of p.locks) wait += l.stats.wait.sum;
    out[`${prefix}.area_lock.wait_ns`] = wait;
  }

  checkInvariants(): void {
    let used = 0;
    for (const p of this.pools) {
      let u = 0;
      for (let i = 0; i < p.nslabs; i++) u += p.used[i]!;
      assert(u === p.usedSlots, 'SWIOTLB pool slots in use and their count disagree', p.start);
      used += u;
    }
    assert(used === this.usedSlots, 'SWIOTLB slots in use over the pools disagree', used);
  }
}

/** The first free run of `nslots` inside one segment of area `a`, from its cursor, wrapping inside the area. */
function searchArea(pool: SwiotlbPool, a: number, nslots: number): number {
  const areaSlots = pool.nslabs / pool.nareas;
  const base = a * areaSlots;
  const cursor = pool.areaIndex[a]!;
  for (let k = 0; k < areaSlots; k += IO_TLB_SEGSIZE) {
    const segStart = base + ((cursor - base + k) % areaSlots) - (((cursor - base + k) % areaSlots) % IO_TLB_SEGSIZE);
    const seg = Math.floor(segStart / IO_TLB_SEGSIZE);
    if (pool.segFree[seg]! < nslots) continue;
    const segEnd = Math.min(segStart + IO_TLB_SEGSIZE, base + areaSlots);
    let run = 0;
    for (let i = segStart; i < segEnd; i++) {
      run = pool.used[i] === 0 ? run + 1 : 0;
      if (run === nslots) {
        const index = i - nslots + 1;
        pool.areaIndex[a] = i + 1 >= base + areaSlots ? base : i + 1;
        return index;
      }
    }
  }
  return -1;
}

function take(pool: SwiotlbPool, index: number, nslots: number): void {
  for (let i = index; i < index + nslots; i++) {
    pool.used[i] = 1;
    pool.segFree[Math.floor(i / IO_TLB_SEGSIZE)]!--;
  }
  pool.usedSlots += nslots;
}
