import { assert } from '../../sim/assert.ts';
import { Series, TimeWeightedGauge } from '../../sim/stats.ts';
import type { Sim } from '../../sim/sim.ts';
import { PAGE_SIZE, PAGES_PER_2M, SIZE_1G, SIZE_2M, hex } from '../arch/units.ts';

/**
 * Host physical memory: who owns every 2 MiB block of host RAM, and a buddy-like allocator that
 * hands blocks and 4 KiB pages to the VMs, the TDX module and the host kernel sharing one Host.
 *
 * What the kernel does ([linux:mm/page_alloc.c]): the buddy allocator keeps free blocks of order
 * 0..MAX_PAGE_ORDER on per-zone free lists, splits a larger block to serve a smaller request
 * (expand()) and merges a freed block with its free buddy (__free_one_page()). Memory is grouped
 * into pageblocks (pageblock_order = 9 on x86: 2 MiB), each tagged with a migratetype, so that
 * unmovable allocations cluster in a few pageblocks instead of pinning every 2 MiB region. A
 * 1 GiB allocation is beyond the buddy's MAX_PAGE_ORDER and goes through alloc_contig_pages()
 * (gigantic hugetlb pages, and the TDX PAMT in tdmr_set_up_pamt()), which needs an aligned,
 * entirely free 1 GiB range.
 *
 * What is simplified here:
 * - The unit of bookkeeping is the 2 MiB block: there is no per-4K buddy below 2 MiB. Orders
 *   9..18 (2 MiB..1 GiB, in the kernel's 4K-page orders) are aligned runs of 2^(order-9) blocks;
 *   the 1 GiB order plays alloc_contig_pages().
 * - A 4 KiB page comes from a block reserved to one (owner, kind), like a pageblock of one
 *   migratetype, but nothing ever steals from another (owner, kind)'s block (no fallback
 *   between migratetypes); a 4K block keeps a 512-bit bitmap, nothing else per 4K.
 * - The allocator takes the lowest-addressed aligned run that fits (the kernel takes the head
 *   of a free list); any aligned run of free blocks counts as merged, as the buddy would have
 *   merged it. No zones, watermarks, per-CPU lists, reclaim, compaction or migration: the
 *   fragmentation a caller sees comes from the order of allocations and frees only.
 * - NUMA fallback is the preferred node, then the others in index order (the kernel's zonelist
 *   orders them by node_distance()); there is no __GFP_THISNODE.
 *
 * State lives in typed arrays indexed by a global block number (no per-block objects), so an
 * 8 TiB host (4M blocks) costs about 13 bytes per block. Each node's blocks are laid out from
 * its start rounded down to 1 GiB, padded at both ends with absent blocks, so a block number
 * is aligned exactly as its address is, and every 1 GiB chunk of numbers belongs to one node.
 */

/** A host physical address, in bytes. */
export type Hpa = number;
/** A registered owner of host memory; 0 is nobody (a free block). */
export type OwnerId = number;
export const NO_OWNER: OwnerId = 0;

/** What a block is used for (the metrics break usage down by kind). */
export const HOST_MEMORY_KINDS = ['gmem', 'sept', 'tdx_control', 'pamt', 'rmp', 'vmm_shared', 'kernel', 'firmware'] as const;
export type HostMemoryKind = (typeof HOST_MEMORY_KINDS)[number];

/** Orders in the kernel's sense (a block of 2^order 4 KiB pages); this allocator serves 9..18. */
export const ORDER_2M = 9;
export const ORDER_1G = 18;

/** One NUMA node's RAM: a 2 MiB-aligned range. */
export interface HostMemoryNode {
  start: Hpa;
  bytes: number;
}

export interface HostMemoryConfig {
  /** In increasing address order, not overlapping. */
  nodes: HostMemoryNode[];
}

/** `nodeCount` equal nodes, back to back from `start`, sharing `totalBytes`. */
export function equalNodes(totalBytes: number, nodeCount: number, start: Hpa = 0): HostMemoryNode[] {
  assert(Number.isSafeInteger(nodeCount) && nodeCount >= 1, 'equalNodes: the node count must be a positive integer', nodeCount);
  const bytes = totalBytes / nodeCount;
  assert(Number.isSafeInteger(bytes) && bytes > 0 && bytes % SIZE_2M === 0, 'equalNodes: each node must be a positive multiple of 2 MiB', { totalBytes, nodeCount });
  return Array.from({ length: nodeCount }, (_, i) => ({ start: start + i * bytes, bytes }));
}

const BLOCKS_PER_CHUNK = SIZE_1G / SIZE_2M; // 512 blocks: one 1 GiB chunk
const WORDS_PER_BITMAP = PAGES_PER_2M / 32; // a 4K block's page bitmap, 16 words
const MAX_BLOCKS = 1 << 25; // 64 TiB of padded layout; typed arrays stay under 450 MB
const MAX_NODES = 64;
const OWNER_NAME = /^[A-Za-z0-9_-]+$/;

/** How a block is held. Absent blocks are the padding of a node's layout, never free. */
const MODE_FREE = 0;
const MODE_BLOCKS = 1; // part of an allocBlocks() run; all 512 pages in use
const MODE_PAGES = 2; // split by allocPage(); its own bitmap says which 4K pages are in use
const MODE_REGION = 3; // allocRegionBlock(); the caller keeps the 4K layout and marks counts
const MODE_ABSENT = 4;
const MODE_NAMES = ['free', 'allocBlocks', 'allocPage', 'allocRegionBlock', 'absent'];

/** A node's place in the block layout and its free-space counters. */
class NodeState {
  /** Global block number of the first block of the padded layout (a multiple of 512). */
  readonly base: number;
  /** Address of block `base`: the node's start rounded down to 1 GiB. */
  readonly padStart: Hpa;
  readonly end: Hpa;
  /** The node's RAM as global block numbers [firstBlock, endBlock). */
  readonly firstBlock: number;
  readonly endBlock: number;
  readonly firstChunk: number;
  readonly endChunk: number;
  freeBlocks: number;
  /** 1 GiB chunks entirely free (alloc_contig_pages() at 1 GiB can use each). */
  free1g = 0;
  /**
   * Per order 9..18 (index order - 9): no aligned free run of that order starts below this
   * block, so the lowest-address-first search starts here. A search that finds nothing moves
   * it to the node's end, a free lowers it: repeated failures cost O(1) until memory returns.
   */
  readonly hints: number[];

  constructor(
    readonly index: number,
    readonly start: Hpa,
    bytes: number,
    base: number,
  ) {
    this.base = base;
    this.padStart = Math.floor(start / SIZE_1G) * SIZE_1G;
    this.end = start + bytes;
    this.firstBlock = base + (start - this.padStart) / SIZE_2M;
    this.endBlock = this.firstBlock + bytes / SIZE_2M;
    this.firstChunk = base / BLOCKS_PER_CHUNK;
    this.endChunk = this.firstChunk + Math.ceil((this.end - this.padStart) / SIZE_1G);
    this.freeBlocks = bytes / SIZE_2M;
    this.hints = Array.from({ length: ORDER_1G - ORDER_2M + 1 }, () => this.firstBlock);
  }

  get paddedBlocks(): number {
    return (this.endChunk - this.firstChunk) * BLOCKS_PER_CHUNK;
  }
}

/**
 * The owner of host RAM. Allocation failures are return values (null: the caller's -ENOMEM);
 * misuse (a double free, a free by another owner, a page freed in a free block, counters that
 * disagree with a recount) is an assertion that names the address, the owners and the time.
 */
export class HostMemory {
  private readonly nodes: NodeState[];
  /** Per block: owner id (0 free), pages in use (0..512), kind index + 1 (0 none), mode, run order. */
  private readonly owner: Int32Array;
  private readonly used: Uint16Array;
  private readonly kind: Uint8Array;
  private readonly mode: Uint8Array;
  private readonly order: Uint8Array;
  /** Per block: its 4K bitmap slot when split by allocPage(), else -1. */
  private readonly slot: Int32Array;
  /** One bit per block, set when free; per 1 GiB chunk, free blocks and the node it belongs to. */
  private readonly freeBits: Uint32Array;
  private readonly chunkFree: Uint16Array;
  private readonly chunkNode: Uint8Array;

  /**
   * 4K bitmaps of split blocks, by slot, and the partial lists: for each (owner, kind, node) a
   * doubly linked list through the slots of its split blocks that have free pages. The head is
   * the current block (allocPage() fills it first); a full block that gets a page back joins at
   * the tail.
   */
  private slotBits = new Uint32Array(64 * WORDS_PER_BITMAP);
  private slotBlock = new Int32Array(64);
  private slotPrev = new Int32Array(64);
  private slotNext = new Int32Array(64);
  private slotHighWater = 0;
  private readonly freeSlots: number[] = [];
  private readonly partialHead: number[] = [];
  private readonly partialTail: number[] = [];

  private readonly ownerNames: string[] = ['(free)'];
  private readonly ownerIds = new Map<string, OwnerId>();
  private readonly usedPagesByOwner: number[] = [0];
  private readonly usedPagesByKind: number[];
  private usedPages = 0;
  private reservedBlocks = 0;

  private readonly gauge: TimeWeightedGauge;
  private readonly series: Series;

  constructor(
    readonly sim: Sim,
    config: HostMemoryConfig,
  ) {
    this.nodes = layoutNodes(config.nodes);
    const blocks = this.nodes.reduce((sum, n) => sum + n.paddedBlocks, 0);
    assert(blocks <= MAX_BLOCKS, 'host memory: the node layout exceeds 64 TiB of 2 MiB blocks', blocks);
    this.owner = new Int32Array(blocks);
    this.used = new Uint16Array(blocks);
    this.kind = new Uint8Array(blocks);
    this.mode = new Uint8Array(blocks).fill(MODE_ABSENT);
    this.order = new Uint8Array(blocks);
    this.slot = new Int32Array(blocks).fill(-1);
    this.freeBits = new Uint32Array(blocks / 32);
    this.chunkFree = new Uint16Array(blocks / BLOCKS_PER_CHUNK);
    this.chunkNode = new Uint8Array(blocks / BLOCKS_PER_CHUNK);
    for (const node of this.nodes) this.initNode(node);
    this.usedPagesByKind = HOST_MEMORY_KINDS.map(() => 0);
    this.gauge = new TimeWeightedGauge('host_memory.used_bytes', sim);
    this.series = new Series('host_memory.used_bytes');
    this.series.record(sim.now, 0);
  }

  private initNode(node: NodeState): void {
    for (let c = node.firstChunk; c < node.endChunk; c++) this.chunkNode[c] = node.index;
    for (let b = node.firstBlock; b < node.endBlock; b++) {
      this.mode[b] = MODE_FREE;
      this.freeBits[b >>> 5] = this.freeBits[b >>> 5]! | (1 << (b & 31));
      this.chunkFree[b >>> 9]!++;
    }
    for (let c = node.firstChunk; c < node.endChunk; c++) if (this.chunkFree[c] === BLOCKS_PER_CHUNK) node.free1g++;
  }

  // ---- Owners --------------------------------------------------------------------------------

  /** A new owner ('vm1', 'tdx-module', 'host'): letters, digits, '_' and '-', unique. */
  registerOwner(name: string): OwnerId {
    assert(OWNER_NAME.test(name), 'host memory: an owner name is letters, digits, _ and - (it becomes a metric key)', name);
    assert(!this.ownerIds.has(name), 'host memory: owner registered twice', name);
    const id = this.ownerNames.length;
    this.ownerNames.push(name);
    this.ownerIds.set(name, id);
    this.usedPagesByOwner.push(0);
    for (let i = 0; i < HOST_MEMORY_KINDS.length * this.nodes.length; i++) {
      this.partialHead.push(-1);
      this.partialTail.push(-1);
    }
    return id;
  }

  ownerName(owner: OwnerId): string {
    assert(Number.isInteger(owner) && owner >= 0 && owner < this.ownerNames.length, 'host memory: no such owner', owner);
    return this.ownerNames[owner]!;
  }

  // ---- 2 MiB .. 1 GiB runs: the buddy-like allocator -----------------------------------------

  /**
   * An aligned run of 2^(order-9) free blocks (order 9 = 2 MiB .. 18 = 1 GiB), the lowest that
   * fits on `node` (default: node 0), else on the other nodes in index order; null when none has
   * one, even if enough scattered blocks are free (the caller returns -ENOMEM).
   */
  allocBlocks(owner: OwnerId, kind: HostMemoryKind, order: number, node?: number): Hpa | null {
    this.checkOwner(owner, 'allocBlocks');
    const k = kindIndex(kind);
    const n = blocksOfOrder(order, 'allocBlocks');
    const preferred = this.checkNode(node, 'allocBlocks');
    for (let i = 0; i < this.nodes.length; i++) {
      const b = this.findRun(this.nodes[fallback(preferred, i)]!, n);
      if (b < 0) continue;
      this.take(b, n, owner, k, MODE_BLOCKS, order);
      this.account(owner, k, n * PAGES_PER_2M);
      return this.hpaOf(b);
    }
    return null;
  }

  /** Frees a run allocBlocks() gave `owner` at `hpa` with the same `order`. */
  freeBlocks(hpa: Hpa, order: number, owner: OwnerId): void {
    const n = blocksOfOrder(order, 'freeBlocks');
    if (hpa % (n * SIZE_2M) !== 0) this.fail('freeBlocks', `${hex(hpa)} is not aligned to order ${order}`, { hpa: hex(hpa), order });
    const b = this.blockOf(hpa, 'freeBlocks');
    this.checkHeld(b, hpa, owner, MODE_BLOCKS, 'freeBlocks');
    if (this.order[b] !== order) {
      this.fail('freeBlocks', `${hex(hpa)} freed with order ${order} but allocated with order ${this.order[b]}`, { hpa: hex(hpa), order, allocated: this.order[b] });
    }
    this.account(owner, this.kind[b]! - 1, -n * PAGES_PER_2M);
    this.release(b, n);
  }

  // ---- 4 KiB pages: one block per (owner, kind), like a pageblock of one migratetype ---------

  /**
   * A 4 KiB page: from the current block of (owner, kind) on the node if it has a free page,
   * else from a fresh 2 MiB block (lowest free); nodes tried as allocBlocks() tries them.
   */
  allocPage(owner: OwnerId, kind: HostMemoryKind, node?: number): Hpa | null {
    this.checkOwner(owner, 'allocPage');
    const k = kindIndex(kind);
    const preferred = this.checkNode(node, 'allocPage');
    for (let i = 0; i < this.nodes.length; i++) {
      const nodeIndex = fallback(preferred, i);
      const list = this.listKey(owner, k, nodeIndex);
      let s = this.partialHead[list]!;
      if (s < 0) {
        const b = this.findRun(this.nodes[nodeIndex]!, 1);
        if (b < 0) continue;
        this.take(b, 1, owner, k, MODE_PAGES, ORDER_2M);
        s = this.newSlot(b);
        this.linkTail(list, s);
      }
      return this.takePage(s, list, owner, k);
    }
    return null;
  }

  private takePage(s: number, list: number, owner: OwnerId, k: number): Hpa {
    const b = this.slotBlock[s]!;
    const bits = this.slotBits;
    const base = s * WORDS_PER_BITMAP;
    let page = -1;
    for (let w = 0; w < WORDS_PER_BITMAP; w++) {
      const word = bits[base + w]!;
      if (word === 0xffffffff) continue;
      const bit = ctz(~word);
      bits[base + w] = word | (1 << bit);
      page = w * 32 + bit;
      break;
    }
    assert(page >= 0, 'host memory: a block on a partial list has no free page', { block: hex(this.hpaOf(b)) });
    if (++this.used[b]! === PAGES_PER_2M) this.unlink(list, s);
    this.account(owner, k, 1);
    return this.hpaOf(b) + page * PAGE_SIZE;
  }

  /** Frees a page allocPage() gave `owner`; the block becomes free when its last page returns. */
  freePage(hpa: Hpa, owner: OwnerId): void {
    if (hpa % PAGE_SIZE !== 0) this.fail('freePage', `${hex(hpa)} is not 4 KiB aligned`, { hpa: hex(hpa) });
    const b = this.blockOf(hpa, 'freePage');
    this.checkHeld(b, hpa, owner, MODE_PAGES, 'freePage');
    const s = this.slot[b]!;
    const page = (hpa - this.hpaOf(b)) / PAGE_SIZE;
    const w = s * WORDS_PER_BITMAP + (page >>> 5);
    const bit = 1 << (page & 31);
    if ((this.slotBits[w]! & bit) === 0) this.fail('freePage', `double free of page ${hex(hpa)}`, { hpa: hex(hpa), owner: this.ownerNames[owner] });
    this.slotBits[w] = this.slotBits[w]! & ~bit;
    const k = this.kind[b]! - 1;
    const list = this.listKey(owner, k, this.chunkNode[b >>> 9]!);
    const wasFull = this.used[b] === PAGES_PER_2M;
    this.account(owner, k, -1);
    if (--this.used[b]! === 0) {
      if (!wasFull) this.unlink(list, s);
      this.freeSlot(s, b);
      this.release(b, 1);
    } else if (wasFull) {
      this.linkTail(list, s);
    }
  }

  // ---- Region blocks: the caller keeps the 4K layout ------------------------------------------

  /**
   * A whole 2 MiB block reserved to `owner`, with no page in use yet: the caller (guest_memfd
   * with 4K folios, one host block per guest 2 MiB region) marks pages with usePages() and
   * unmarks them with unusePages(); the block returns to free when the count falls to 0.
   */
  allocRegionBlock(owner: OwnerId, kind: HostMemoryKind, node?: number): Hpa | null {
    this.checkOwner(owner, 'allocRegionBlock');
    const k = kindIndex(kind);
    const preferred = this.checkNode(node, 'allocRegionBlock');
    for (let i = 0; i < this.nodes.length; i++) {
      const b = this.findRun(this.nodes[fallback(preferred, i)]!, 1);
      if (b < 0) continue;
      this.take(b, 1, owner, k, MODE_REGION, ORDER_2M);
      return this.hpaOf(b);
    }
    return null;
  }

  /** Counts `n` more pages in use in the region block holding `hpa` (checked against `owner` if given). */
  usePages(hpa: Hpa, n: number, owner?: OwnerId): void {
    const b = this.regionBlock(hpa, n, owner, 'usePages');
    if (this.used[b]! + n > PAGES_PER_2M) {
      this.fail('usePages', `${this.used[b]} + ${n} pages in use in the 2 MiB block at ${hex(this.hpaOf(b))}`, { hpa: hex(hpa), used: this.used[b], n });
    }
    this.used[b]! += n;
    this.account(this.owner[b]!, this.kind[b]! - 1, n);
  }

  /** Counts `n` fewer pages in use; returns true when that freed the block (count 0). */
  unusePages(hpa: Hpa, n: number, owner?: OwnerId): boolean {
    const b = this.regionBlock(hpa, n, owner, 'unusePages');
    if (n > this.used[b]!) {
      this.fail('unusePages', `${n} pages returned but ${this.used[b]} in use in the block at ${hex(this.hpaOf(b))}`, { hpa: hex(hpa), used: this.used[b], n });
    }
    this.used[b]! -= n;
    this.account(this.owner[b]!, this.kind[b]! - 1, -n);
    if (n === 0 || this.used[b] !== 0) return false; // a fresh block stays reserved until used
    this.release(b, 1);
    return true;
  }

  /** Drops a whole region block whatever its count (a truncated file); returns the pages it had in use. */
  freeRegionBlock(hpa: Hpa, owner: OwnerId): number {
    const b = this.blockOf(hpa, 'freeRegionBlock');
    this.checkHeld(b, hpa, owner, MODE_REGION, 'freeRegionBlock');
    const pages = this.used[b]!;
    if (pages > 0) this.account(owner, this.kind[b]! - 1, -pages);
    this.release(b, 1);
    return pages;
  }

  // ---- Fixed ranges: memblock reservations, offline memory, alloc_contig_pages() -------------

  /**
   * Takes the 2 MiB blocks of [hpa, hpa + bytes) for `owner`, each a 2M run (freed one by one
   * with freeBlocks(order 9) or freeRange()): a hole in a NUMA node's span, memory not yet
   * onlined, a memblock reservation. Returns false, taking nothing, if any block is not free.
   */
  takeRange(owner: OwnerId, kind: HostMemoryKind, hpa: Hpa, bytes: number): boolean {
    this.checkOwner(owner, 'takeRange');
    if (hpa % SIZE_2M !== 0 || bytes % SIZE_2M !== 0 || bytes <= 0) this.fail('takeRange', `[${hex(hpa)}, +${bytes}) is not a 2 MiB-aligned range`, { hpa: hex(hpa), bytes });
    const k = kindIndex(kind);
    const first = this.blockOf(hpa, 'takeRange');
    const n = bytes / SIZE_2M;
    this.blockOf(hpa + bytes - SIZE_2M, 'takeRange');
    for (let b = first; b < first + n; b++) if (this.mode[b] !== MODE_FREE) return false;
    for (let b = first; b < first + n; b++) this.take(b, 1, owner, k, MODE_BLOCKS, ORDER_2M);
    this.account(owner, k, n * PAGES_PER_2M);
    return true;
  }

  /** Frees every 2 MiB block of [hpa, hpa + bytes) that takeRange() or allocContig() gave `owner`. */
  freeRange(hpa: Hpa, bytes: number, owner: OwnerId): void {
    for (let a = hpa; a < hpa + bytes; a += SIZE_2M) this.freeBlocks(a, ORDER_2M, owner);
  }

  /**
   * alloc_contig_pages(): `bytes` (rounded up to 2 MiB) of physically contiguous free memory,
   * on `node` first, then the other nodes in index order (the kernel passes node_online_map);
   * null when no node has such a run (the caller's -ENOMEM) ([linux:mm/page_alloc.c]).
   * Simplified: the first run of free 2 MiB blocks, at any 2 MiB boundary (the kernel tries
   * ranges aligned to the request's size and may migrate movable pages out of them; here a
   * block in use is never moved).
   */
  allocContig(owner: OwnerId, kind: HostMemoryKind, bytes: number, node?: number): Hpa | null {
    this.checkOwner(owner, 'allocContig');
    const k = kindIndex(kind);
    const n = Math.ceil(bytes / SIZE_2M);
    if (!(n >= 1)) this.fail('allocContig', 'the size must be positive', { bytes });
    const preferred = this.checkNode(node, 'allocContig');
    for (let i = 0; i < this.nodes.length; i++) {
      const nd = this.nodes[fallback(preferred, i)]!;
      if (nd.freeBlocks < n) continue;
      let run = 0;
      for (let b = nd.firstBlock; b < nd.endBlock; b++) {
        run = (this.freeBits[b >>> 5]! & (1 << (b & 31))) !== 0 ? run + 1 : 0;
        if (run < n) continue;
        const start = b - n + 1;
        for (let j = start; j <= b; j++) this.take(j, 1, owner, k, MODE_BLOCKS, ORDER_2M);
        this.account(owner, k, n * PAGES_PER_2M);
        return this.hpaOf(start);
      }
    }
    return null;
  }

  private regionBlock(hpa: Hpa, n: number, owner: OwnerId | undefined, op: string): number {
    if (!(Number.isInteger(n) && n >= 0)) this.fail(op, 'the page count must be a non-negative integer', { n });
    const b = this.blockOf(hpa, op);
    this.checkHeld(b, hpa, owner ?? this.owner[b]!, MODE_REGION, op);
    return b;
  }

  // ---- Queries -------------------------------------------------------------------------------

  /** The owner of the block holding `hpa` (NO_OWNER when the block is free). */
  ownerOf(hpa: Hpa): OwnerId {
    return this.owner[this.blockOf(hpa, 'ownerOf')]!;
  }

  /** The kind of the block holding `hpa`, null when the block is free. */
  kindOf(hpa: Hpa): HostMemoryKind | null {
    const k = this.kind[this.blockOf(hpa, 'kindOf')]!;
    return k === 0 ? null : HOST_MEMORY_KINDS[k - 1]!;
  }

  /** Pages in use in the 2 MiB block holding `hpa` (0..512). */
  usedPagesOf(hpa: Hpa): number {
    return this.used[this.blockOf(hpa, 'usedPagesOf')]!;
  }

  /** The NUMA node whose RAM holds `hpa`. */
  nodeOf(hpa: Hpa): number {
    return this.nodeIndexOf(hpa, 'nodeOf');
  }

  get nodeCount(): number {
    return this.nodes.length;
  }

  /** Bytes of 4 KiB pages in use (a whole block run counts 512 pages per block). */
  usedBytes(): number {
    return this.usedPages * PAGE_SIZE;
  }

  usedBytesBy(owner: OwnerId): number {
    this.ownerName(owner);
    return this.usedPagesByOwner[owner]! * PAGE_SIZE;
  }

  usedBytesOfKind(kind: HostMemoryKind): number {
    return this.usedPagesByKind[kindIndex(kind)]! * PAGE_SIZE;
  }

  /** Bytes of blocks taken out of the free pool, used or not (a split block's free pages count). */
  reservedBytes(): number {
    return this.reservedBlocks * SIZE_2M;
  }

  totalBytes(node?: number): number {
    return this.sumNodes(node, (n) => (n.endBlock - n.firstBlock) * SIZE_2M);
  }

  freeBytes(node?: number): number {
    return this.sumNodes(node, (n) => n.freeBlocks * SIZE_2M);
  }

  /** Aligned 1 GiB chunks entirely free (the fragmentation measure). */
  free1gChunks(node?: number): number {
    return this.sumNodes(node, (n) => n.free1g);
  }

  /** The largest order (9..18) an allocation on `node` alone could get now; -1 when the node is full. */
  largestFreeOrder(node: number): number {
    const n = this.nodes[this.checkNode(node, 'largestFreeOrder')]!;
    if (n.free1g > 0) return ORDER_1G;
    let best = -1;
    for (let c = n.firstChunk; c < n.endChunk; c++) {
      const free = this.chunkFree[c]!;
      if (free === 0) continue;
      for (let order = ORDER_2M + Math.floor(Math.log2(free)); order > best; order--) {
        if (this.searchChunk(c * BLOCKS_PER_CHUNK, 1 << (order - ORDER_2M)) >= 0) {
          best = order;
          break;
        }
      }
      if (best === ORDER_1G - 1) break;
    }
    return best;
  }

  /** Host memory in use over virtual time: one point per instant at which it changed. */
  curve(): { timeNs: readonly number[]; bytes: readonly number[] } {
    return { timeNs: this.series.times, bytes: this.series.values };
  }

  /**
   * Writes, in sorted key order: `<prefix>.by_kind.<kind>.bytes` (every kind),
   * `<prefix>.by_owner.<name>.bytes` (every registered owner), `<prefix>.free_1g_chunks`,
   * `<prefix>.free_bytes`, `<prefix>.reserved_bytes`, `<prefix>.used_bytes`,
   * `<prefix>.used_bytes_mean` (time-weighted since construction) and `<prefix>.used_bytes_peak`.
   */
  metrics(prefix: string, out: Record<string, number>): Record<string, number> {
    const mine: Record<string, number> = {
      [`${prefix}.free_1g_chunks`]: this.free1gChunks(),
      [`${prefix}.free_bytes`]: this.freeBytes(),
      [`${prefix}.reserved_bytes`]: this.reservedBytes(),
      [`${prefix}.used_bytes`]: this.usedBytes(),
      [`${prefix}.used_bytes_mean`]: this.gauge.mean(),
      [`${prefix}.used_bytes_peak`]: this.gauge.max,
    };
    HOST_MEMORY_KINDS.forEach((kind, k) => (mine[`${prefix}.by_kind.${kind}.bytes`] = this.usedPagesByKind[k]! * PAGE_SIZE));
    for (let id = 1; id < this.ownerNames.length; id++) {
      mine[`${prefix}.by_owner.${this.ownerNames[id]}.bytes`] = this.usedPagesByOwner[id]! * PAGE_SIZE;
    }
    for (const key of Object.keys(mine).sort()) out[key] = mine[key]!;
    return out;
  }

  // ---- Invariants ----------------------------------------------------------------------------

  /** Recounts everything from the per-block arrays and compares with the running counters. */
  checkInvariants(): void {
    const byOwner = this.ownerNames.map(() => 0);
    const byKind = HOST_MEMORY_KINDS.map(() => 0);
    let reserved = 0;
    let partialBlocks = 0;
    for (const node of this.nodes) {
      const counts = this.recountNode(node, byOwner, byKind);
      reserved += counts.reserved;
      partialBlocks += counts.partial;
    }
    const total = byOwner.reduce((a, b) => a + b, 0);
    this.expect(total === this.usedPages, 'pages in use', this.usedPages, total);
    byOwner.forEach((pages, id) => this.expect(pages === this.usedPagesByOwner[id], `pages in use by ${this.ownerNames[id]}`, this.usedPagesByOwner[id], pages));
    byKind.forEach((pages, k) => this.expect(pages === this.usedPagesByKind[k], `pages in use of kind ${HOST_MEMORY_KINDS[k]}`, this.usedPagesByKind[k], pages));
    this.expect(reserved === this.reservedBlocks, 'reserved blocks', this.reservedBlocks, reserved);
    this.expect(this.gauge.value === this.usedPages * PAGE_SIZE, 'the used-bytes gauge', this.gauge.value, this.usedPages * PAGE_SIZE);
    this.checkPartialLists(partialBlocks);
  }

  private recountNode(node: NodeState, byOwner: number[], byKind: number[]): { reserved: number; partial: number } {
    let free = 0;
    let free1g = 0;
    let reserved = 0;
    let partial = 0;
    for (let c = node.firstChunk; c < node.endChunk; c++) {
      let chunkFree = 0;
      for (let b = c * BLOCKS_PER_CHUNK; b < (c + 1) * BLOCKS_PER_CHUNK; b++) {
        const inRam = b >= node.firstBlock && b < node.endBlock;
        const isFree = this.checkBlock(b, inRam);
        if (isFree) {
          chunkFree++;
        } else if (inRam) {
          reserved++;
          byOwner[this.owner[b]!]! += this.used[b]!;
          byKind[this.kind[b]! - 1]! += this.used[b]!;
          if (this.mode[b] === MODE_PAGES && this.used[b]! < PAGES_PER_2M) partial++;
        }
      }
      this.expect(chunkFree === this.chunkFree[c], `free blocks of 1 GiB chunk ${c} (node ${node.index})`, this.chunkFree[c], chunkFree);
      free += chunkFree;
      if (chunkFree === BLOCKS_PER_CHUNK) free1g++;
    }
    this.expect(free === node.freeBlocks, `free blocks of node ${node.index}`, node.freeBlocks, free);
    this.expect(free1g === node.free1g, `free 1 GiB chunks of node ${node.index}`, node.free1g, free1g);
    for (let order = ORDER_2M; order <= ORDER_1G; order++) {
      const lowest = this.lowestRun(node, 1 << (order - ORDER_2M));
      const hint = node.hints[order - ORDER_2M]!;
      this.expect(hint <= lowest, `the order-${order} search hint of node ${node.index} (no free run below it)`, hint, lowest);
    }
    return { reserved, partial };
  }

  /** One block's fields agree with its mode; returns whether it is free. */
  private checkBlock(b: number, inRam: boolean): boolean {
    const mode = this.mode[b]!;
    const used = this.used[b]!;
    const bitFree = (this.freeBits[b >>> 5]! & (1 << (b & 31))) !== 0;
    const held = mode !== MODE_FREE && mode !== MODE_ABSENT;
    this.expectBlock(bitFree === (mode === MODE_FREE), b, 'its free bit', bitFree, mode === MODE_FREE);
    this.expectBlock((mode === MODE_ABSENT) === !inRam, b, 'absent exactly outside its node\'s RAM', mode, inRam);
    this.expectBlock((this.owner[b] !== NO_OWNER) === held, b, 'an owner exactly when held', this.owner[b], held);
    this.expectBlock((this.kind[b] !== 0) === held, b, 'a kind exactly when held', this.kind[b], held);
    this.expectBlock((this.slot[b]! >= 0) === (mode === MODE_PAGES), b, 'a 4K bitmap exactly when split', this.slot[b], mode);
    if (!held) this.expectBlock(used === 0, b, 'pages in use', used, 0);
    if (mode === MODE_BLOCKS) this.checkRunBlock(b);
    if (mode === MODE_PAGES) {
      const s = this.slot[b]!;
      let bits = 0;
      for (let w = 0; w < WORDS_PER_BITMAP; w++) bits += popcount(this.slotBits[s * WORDS_PER_BITMAP + w]!);
      this.expectBlock(this.slotBlock[s] === b, b, 'its bitmap slot points back', this.slotBlock[s], b);
      this.expectBlock(used === bits && used > 0, b, 'pages in use against its bitmap', used, bits);
    }
    return mode === MODE_FREE;
  }

  private checkRunBlock(b: number): void {
    const order = this.order[b]!;
    this.expectBlock(order >= ORDER_2M && order <= ORDER_1G, b, 'its run order', order, '9..18');
    const head = b & ~((1 << (order - ORDER_2M)) - 1);
    this.expectBlock(this.mode[head] === MODE_BLOCKS && this.order[head] === order, b, 'the order of its run\'s head', this.order[head], order);
    this.expectBlock(this.owner[head] === this.owner[b] && this.kind[head] === this.kind[b], b, 'the owner and kind of its run\'s head', this.owner[head], this.owner[b]);
    this.expectBlock(this.used[b] === PAGES_PER_2M, b, 'pages in use', this.used[b], PAGES_PER_2M);
  }

  private checkPartialLists(partialBlocks: number): void {
    let listed = 0;
    for (let list = 0; list < this.partialHead.length; list++) {
      // listKey() inverted: list = ((owner - 1) * kinds + k) * nodes + node.
      const owner = Math.floor(list / (HOST_MEMORY_KINDS.length * this.nodes.length)) + 1;
      const k = Math.floor(list / this.nodes.length) % HOST_MEMORY_KINDS.length;
      let prev = -1;
      for (let s = this.partialHead[list]!; s >= 0; prev = s, s = this.slotNext[s]!) {
        const b = this.slotBlock[s]!;
        const where = `partial list of (${this.ownerNames[owner]}, ${HOST_MEMORY_KINDS[k]}, node ${list % this.nodes.length})`;
        this.expect(this.slotPrev[s] === prev, `${where}: back link`, this.slotPrev[s], prev);
        this.expect(this.mode[b] === MODE_PAGES && this.slot[b] === s, `${where}: a split block`, MODE_NAMES[this.mode[b]!], 'allocPage');
        this.expect(this.owner[b] === owner && this.kind[b] === k + 1, `${where}: same owner and kind`, [this.owner[b], this.kind[b]], [owner, k + 1]);
        this.expect(this.used[b]! < PAGES_PER_2M, `${where}: a block with free pages`, this.used[b], '< 512');
        listed++;
      }
      this.expect(this.partialTail[list] === prev, 'partial list tail', this.partialTail[list], prev);
    }
    this.expect(listed === partialBlocks, 'split blocks with free pages on partial lists', listed, partialBlocks);
  }

  // ---- Block bookkeeping ---------------------------------------------------------------------

  /**
   * The lowest aligned run of n free blocks on node, or -1. The search starts at the order's
   * hint, so taking 2M blocks in address order costs O(1) each; chunks (1 GiB) with fewer than
   * n free blocks are skipped on their counter, and a 1G request on a node without an entirely
   * free chunk fails at once.
   */
  private findRun(node: NodeState, n: number): number {
    if (node.freeBlocks < n) return -1;
    if (n === BLOCKS_PER_CHUNK && node.free1g === 0) return -1;
    const h = 31 - Math.clz32(n); // order - 9
    const start = (node.hints[h]! + n - 1) & ~(n - 1);
    for (let c = start >>> 9; c < node.endChunk; c++) {
      if (this.chunkFree[c]! < n) continue;
      const b = this.searchChunk(Math.max(start, c * BLOCKS_PER_CHUNK), n);
      if (b < 0) continue;
      node.hints[h] = b;
      return b;
    }
    node.hints[h] = node.endBlock;
    return -1;
  }

  /** The lowest aligned run of n free blocks on node without the hints, or Infinity (checks only). */
  private lowestRun(node: NodeState, n: number): number {
    for (let c = node.firstChunk; c < node.endChunk; c++) {
      const b = this.searchChunk(c * BLOCKS_PER_CHUNK, n);
      if (b >= 0) return b;
    }
    return Infinity;
  }

  /**
   * The first aligned run of n free blocks from `lo` to the end of lo's 1 GiB chunk, or -1.
   * Bits below lo in lo's word need no mask: lo is a chunk start or alignUp(hint, n), and an
   * aligned run starting below alignUp(hint, n) starts below the hint, so it is not free.
   */
  private searchChunk(lo: number, n: number): number {
    const bits = this.freeBits;
    const endWord = ((lo >>> 9) + 1) * (BLOCKS_PER_CHUNK / 32);
    if (n >= 32) {
      const words = n >>> 5;
      outer: for (let w = ((lo + n - 1) & ~(n - 1)) >>> 5; w < endWord; w += words) {
        for (let i = 0; i < words; i++) if (bits[w + i] !== 0xffffffff) continue outer;
        return w << 5;
      }
      return -1;
    }
    const mask = n === 1 ? 1 : (1 << n) - 1;
    for (let w = lo >>> 5; w < endWord; w++) {
      const word = bits[w]!;
      if (word === 0) continue;
      if (n === 1) return (w << 5) + ctz(word);
      for (let p = 0; p < 32; p += n) if (((word >>> p) & mask) === mask) return (w << 5) + p;
    }
    return -1;
  }

  private take(b: number, n: number, owner: OwnerId, k: number, mode: number, order: number): void {
    const node = this.nodes[this.chunkNode[b >>> 9]!]!;
    const pages = mode === MODE_BLOCKS ? PAGES_PER_2M : 0;
    for (let i = b; i < b + n; i++) {
      this.owner[i] = owner;
      this.kind[i] = k + 1;
      this.mode[i] = mode;
      this.order[i] = order;
      this.used[i] = pages;
      this.freeBits[i >>> 5] = this.freeBits[i >>> 5]! & ~(1 << (i & 31));
      if (this.chunkFree[i >>> 9]-- === BLOCKS_PER_CHUNK) node.free1g--;
    }
    node.freeBlocks -= n;
    this.reservedBlocks += n;
  }

  /** Returns n blocks from b to the free pool (the buddy merge is implicit in the free bits). */
  private release(b: number, n: number): void {
    const node = this.nodes[this.chunkNode[b >>> 9]!]!;
    for (let i = b; i < b + n; i++) {
      this.owner[i] = NO_OWNER;
      this.kind[i] = 0;
      this.mode[i] = MODE_FREE;
      this.order[i] = 0;
      this.used[i] = 0;
      this.freeBits[i >>> 5] = this.freeBits[i >>> 5]! | (1 << (i & 31));
      if (++this.chunkFree[i >>> 9]! === BLOCKS_PER_CHUNK) node.free1g++;
    }
    node.freeBlocks += n;
    const hints = node.hints;
    for (let h = 0; h < hints.length; h++) {
      const runStart = b & ~((1 << h) - 1); // the lowest run of order h + 9 the freed blocks can join
      if (runStart < hints[h]!) hints[h] = runStart;
    }
    this.reservedBlocks -= n;
  }

  /** Every change of pages in use goes through here: counters, the gauge and the curve. */
  private account(owner: OwnerId, k: number, pages: number): void {
    this.usedPages += pages;
    this.usedPagesByOwner[owner]! += pages;
    this.usedPagesByKind[k]! += pages;
    const bytes = this.usedPages * PAGE_SIZE;
    this.gauge.set(bytes);
    const times = this.series.times;
    const last = times.length - 1;
    if (times[last] === this.sim.now) this.series.values[last] = bytes;
    else this.series.record(this.sim.now, bytes);
  }

  // ---- 4K bitmap slots and partial lists -----------------------------------------------------

  private listKey(owner: OwnerId, k: number, node: number): number {
    return ((owner - 1) * HOST_MEMORY_KINDS.length + k) * this.nodes.length + node;
  }

  private newSlot(b: number): number {
    let s = this.freeSlots.pop();
    if (s === undefined) {
      s = this.slotHighWater++;
      if (s === this.slotBlock.length) this.growSlots();
    }
    this.slotBits.fill(0, s * WORDS_PER_BITMAP, (s + 1) * WORDS_PER_BITMAP);
    this.slotBlock[s] = b;
    this.slot[b] = s;
    return s;
  }

  private freeSlot(s: number, b: number): void {
    this.slot[b] = -1;
    this.slotBlock[s] = -1;
    this.freeSlots.push(s);
  }

  private growSlots(): void {
    const grow = <T extends Int32Array | Uint32Array>(a: T, make: (n: number) => T): T => {
      const bigger = make(a.length * 2);
      bigger.set(a);
      return bigger;
    };
    this.slotBits = grow(this.slotBits, (n) => new Uint32Array(n));
    this.slotBlock = grow(this.slotBlock, (n) => new Int32Array(n));
    this.slotPrev = grow(this.slotPrev, (n) => new Int32Array(n));
    this.slotNext = grow(this.slotNext, (n) => new Int32Array(n));
  }

  private linkTail(list: number, s: number): void {
    const tail = this.partialTail[list]!;
    this.slotPrev[s] = tail;
    this.slotNext[s] = -1;
    if (tail < 0) this.partialHead[list] = s;
    else this.slotNext[tail] = s;
    this.partialTail[list] = s;
  }

  private unlink(list: number, s: number): void {
    const prev = this.slotPrev[s]!;
    const next = this.slotNext[s]!;
    if (prev < 0) this.partialHead[list] = next;
    else this.slotNext[prev] = next;
    if (next < 0) this.partialTail[list] = prev;
    else this.slotPrev[next] = prev;
    this.slotPrev[s] = -1;
    this.slotNext[s] = -1;
  }

  // ---- Addresses and checks ------------------------------------------------------------------

  private hpaOf(b: number): Hpa {
    const node = this.nodes[this.chunkNode[b >>> 9]!]!;
    return node.padStart + (b - node.base) * SIZE_2M;
  }

  private nodeIndexOf(hpa: Hpa, op: string): number {
    for (const node of this.nodes) if (hpa >= node.start && hpa < node.end) return node.index;
    return this.fail(op, `${hex(hpa)} is not host RAM`, { hpa: Number.isFinite(hpa) ? hex(hpa) : hpa });
  }

  private blockOf(hpa: Hpa, op: string): number {
    const node = this.nodes[this.nodeIndexOf(hpa, op)]!;
    return node.base + Math.floor((hpa - node.padStart) / SIZE_2M);
  }

  /**
   * Block b is held by `owner` through `mode`: the checks of every free (a double free, a page
   * freed in a free block, a free by another owner) and of usePages()/unusePages().
   */
  private checkHeld(b: number, hpa: Hpa, owner: OwnerId, mode: number, op: string): void {
    const held = this.mode[b]!;
    const by = this.ownerNames[owner] ?? owner;
    if (held === MODE_FREE) {
      const what = op === 'freePage' ? `page ${hex(hpa)} freed in a free block`
        : op.startsWith('free') ? `double free of ${hex(hpa)} (the block is free)`
        : `the block at ${hex(hpa)} is free`;
      this.fail(op, what, { hpa: hex(hpa), by });
    }
    if (this.owner[b] !== owner) {
      const verb = op.startsWith('free') || op === 'unusePages' ? 'freed' : 'used';
      const actual = this.ownerNames[this.owner[b]!];
      this.fail(op, `${hex(hpa)} ${verb} by ${by}, not the owner (${actual})`, { hpa: hex(hpa), by, owner: actual });
    }
    if (held !== mode) {
      this.fail(op, `${hex(hpa)} was allocated by ${MODE_NAMES[held]}, not ${MODE_NAMES[mode]}`, { hpa: hex(hpa), allocatedBy: MODE_NAMES[held] });
    }
  }

  private checkOwner(owner: OwnerId, op: string): void {
    if (!(Number.isInteger(owner) && owner >= 1 && owner < this.ownerNames.length)) this.fail(op, 'not a registered owner', { owner });
  }

  private checkNode(node: number | undefined, op: string): number {
    if (node === undefined) return 0;
    if (!(Number.isInteger(node) && node >= 0 && node < this.nodes.length)) this.fail(op, 'no such NUMA node', { node, nodes: this.nodes.length });
    return node;
  }

  private sumNodes(node: number | undefined, f: (n: NodeState) => number): number {
    if (node !== undefined) return f(this.nodes[this.checkNode(node, 'query')]!);
    let sum = 0;
    for (const n of this.nodes) sum += f(n);
    return sum;
  }

  /** A failed check: the message names the operation and the virtual time, the subject the details. */
  private fail(op: string, message: string, details: Record<string, unknown>): never {
    assert(false, `host memory: ${op}: ${message} [t=${this.sim.now}ns]`, details);
  }

  private expect(ok: boolean, what: string, counted: unknown, recounted: unknown): void {
    if (!ok) this.fail('checkInvariants', `${what} disagrees with a recount`, { counter: counted, recount: recounted });
  }

  /** expect() for one block; the message (naming the block) is built only on failure. */
  private expectBlock(ok: boolean, b: number, what: string, stored: unknown, expected: unknown): void {
    if (!ok) this.fail('checkInvariants', `block ${b} at ${hex(this.hpaOf(b))} (${MODE_NAMES[this.mode[b]!]}): ${what} is wrong`, { stored, expected });
  }
}

function layoutNodes(nodes: HostMemoryNode[]): NodeState[] {
  assert(nodes.length >= 1 && nodes.length <= MAX_NODES, `host memory: 1..${MAX_NODES} NUMA nodes`, nodes.length);
  const out: NodeState[] = [];
  let base = 0;
  nodes.forEach(({ start, bytes }, i) => {
    assert(Number.isSafeInteger(start) && start >= 0 && start % SIZE_2M === 0, 'host memory: a node starts at a 2 MiB-aligned address', { node: i, start });
    assert(Number.isSafeInteger(bytes) && bytes > 0 && bytes % SIZE_2M === 0, 'host memory: a node is a positive multiple of 2 MiB', { node: i, bytes });
    if (i > 0) assert(start >= out[i - 1]!.end, 'host memory: nodes in increasing address order, not overlapping', { node: i, start, previousEnd: out[i - 1]!.end });
    const node = new NodeState(i, start, bytes, base);
    base += node.paddedBlocks;
    out.push(node);
  });
  return out;
}

/** The i-th node to try: the preferred one, then the others in index order. */
function fallback(preferred: number, i: number): number {
  if (i === 0) return preferred;
  return i - 1 < preferred ? i - 1 : i;
}

function kindIndex(kind: HostMemoryKind): number {
  const k = HOST_MEMORY_KINDS.indexOf(kind);
  assert(k >= 0, 'host memory: unknown kind', kind);
  return k;
}

function blocksOfOrder(order: number, op: string): number {
  assert(Number.isInteger(order) && order >= ORDER_2M && order <= ORDER_1G, `host memory: ${op}: order must be 9 (2 MiB) .. 18 (1 GiB)`, order);
  return 1 << (order - ORDER_2M);
}

function ctz(x: number): number {
  return 31 - Math.clz32(x & -x);
}

function popcount(x: number): number {
  let v = x - ((x >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (((v + (v >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}
