import { assert, type Proc } from '../../sim/index.ts';
import { EFI_UNACCEPTED_UNIT_SIZE, hex, roundDown, roundUp } from './constants.ts';
import type { PhysRange } from './memory_map.ts';

/**
 * struct efi_unaccepted_memory: the EFI configuration table (LINUX_EFI_UNACCEPTED_MEM_TABLE_GUID)
 * the EFI stub hands to the kernel. One bitmap bit covers unit_size (2 MiB) starting at
 * phys_base; a set bit means "not yet accepted". Bits are only ever cleared after boot.
 * ([linux:drivers/firmware/efi/libstub/unaccepted_memory.c], [unaccepted-v14-2023-06])
 */
export class EfiUnacceptedMemory {
  readonly version = 1;
  readonly unit_size = EFI_UNACCEPTED_UNIT_SIZE;
  /** Bitmap bytes. */
  readonly size: number;
  readonly bitmap: Uint8Array;
  /** Number of set bits, kept in step with every set and clear. */
  setBits = 0;

  constructor(
    readonly phys_base: number,
    bitmapBytes: number,
  ) {
    assert(phys_base % EFI_UNACCEPTED_UNIT_SIZE === 0, 'phys_base must be unit aligned', hex(phys_base));
    this.size = bitmapBytes;
    this.bitmap = new Uint8Array(bitmapBytes);
  }

  /** Units the bitmap can describe (size * BITS_PER_BYTE). */
  get nbits(): number {
    return this.size * 8;
  }

  /** Highest address the bitmap describes (exclusive). */
  get limit(): number {
    return this.phys_base + this.nbits * this.unit_size;
  }

  test_bit(i: number): boolean {
    return (this.bitmap[i >> 3]! & (1 << (i & 7))) !== 0;
  }

  bitmap_set(start: number, len: number): void {
    for (let i = start; i < start + len; i++) {
      if (!this.test_bit(i)) {
        this.bitmap[i >> 3]! |= 1 << (i & 7);
        this.setBits++;
      }
    }
  }

  bitmap_clear(start: number, len: number): void {
    for (let i = start; i < start + len; i++) {
      if (this.test_bit(i)) {
        this.bitmap[i >> 3]! &= ~(1 << (i & 7));
        this.setBits--;
      }
    }
  }

  /** First set bit in [from, end), or end. Skips zero bytes whole. */
  find_next_bit(from: number, end: number): number {
    let i = from;
    while (i < end) {
      if ((i & 7) === 0 && this.bitmap[i >> 3] === 0) {
        i += 8;
        continue;
      }
      if (this.test_bit(i)) return i;
      i++;
    }
    return end;
  }

  /** First clear bit in [from, end), or end. */
  find_next_zero_bit(from: number, end: number): number {
    let i = from;
    while (i < end) {
      if ((i & 7) === 0 && this.bitmap[i >> 3] === 0xff) {
        i += 8;
        continue;
      }
      if (!this.test_bit(i)) return i;
      i++;
    }
    return end;
  }

  /** for_each_set_bitrange_from(start, ..., end): the next run of set bits at or after `from`. */
  nextSetRange(from: number, end: number): { start: number; end: number } | null {
    const s = this.find_next_bit(from, end);
    if (s >= end) return null;
    return { start: s, end: Math.min(end, this.find_next_zero_bit(s + 1, end)) };
  }

  /** Is any unit of [startUnit, endUnit) set? */
  anySet(startUnit: number, endUnit: number): boolean {
    return this.find_next_bit(startUnit, endUnit) < endUnit;
  }

  /** The unit holding guest-physical address addr (addr >= phys_base). */
  unitOf(addr: number): number {
    return Math.floor((addr - this.phys_base) / this.unit_size);
  }

  unitAddr(unit: number): number {
    return this.phys_base + unit * this.unit_size;
  }

  describe(): string {
    return `efi_unaccepted_memory(phys_base=${hex(this.phys_base)}, units=${this.nbits}, set=${this.setBits})`;
  }
}

/**
 * allocate_unaccepted_bitmap(): a bitmap from the lowest to the highest EFI_UNACCEPTED_MEMORY
 * address, rounded to unit_size. Returns null when firmware left nothing unaccepted.
 */
export function allocate_unaccepted_bitmap(unaccepted: readonly PhysRange[]): EfiUnacceptedMemory | null {
  if (unaccepted.length === 0) return null;
  const start = roundDown(Math.min(...unaccepted.map((r) => r.start)), EFI_UNACCEPTED_UNIT_SIZE);
  const end = roundUp(Math.max(...unaccepted.map((r) => r.end)), EFI_UNACCEPTED_UNIT_SIZE);
  const bitmapBytes = Math.ceil((end - start) / (EFI_UNACCEPTED_UNIT_SIZE * 8));
  return new EfiUnacceptedMemory(start, bitmapBytes);
}

/** What the stub runs for memory it must accept at once: arch_accept_memory(start, end). */
export type EarlyAccept = (start: number, end: number) => Proc<void>;

/**
 * process_unaccepted_memory(start, end): record an EFI_UNACCEPTED_MEMORY range in the bitmap.
 * Ranges under 2 * unit_size, and the unaligned head and tail of larger ones, cannot be
 * represented and are accepted immediately.
 */
export function* process_unaccepted_memory(
  table: EfiUnacceptedMemory,
  start: number,
  end: number,
  arch_accept_memory: EarlyAccept,
): Proc<void> {
  const unit = table.unit_size;
  if (end - start < 2 * unit) {
    yield* arch_accept_memory(start, end);
    return;
  }
  if (start % unit !== 0) {
    yield* arch_accept_memory(start, roundUp(start, unit));
    start = roundUp(start, unit);
  }
  if (end % unit !== 0) {
    yield* arch_accept_memory(roundDown(end, unit), end);
    end = roundDown(end, unit);
  }
  if (start < table.phys_base) {
    yield* arch_accept_memory(start, Math.min(table.phys_base, end));
    start = table.phys_base;
  }
  if (end <= table.phys_base) return;
  if (end > table.limit) {
    yield* arch_accept_memory(table.limit, end);
    end = table.limit;
  }
  table.bitmap_set(table.unitOf(start), (end - start) / unit);
}

/**
 * The EFI stub's and decompressor's accept_memory(start, size): single-threaded, no lock, no
 * guard unit ([linux:drivers/firmware/efi/libstub/unaccepted_memory.c]).
 */
export function* early_accept_memory(
  table: EfiUnacceptedMemory | null,
  start: number,
  size: number,
  arch_accept_memory: EarlyAccept,
): Proc<void> {
  if (table === null) return;
  let end = start + size;
  if (start < table.phys_base) start = table.phys_base;
  if (end < table.phys_base) return;
  if (end > table.limit) end = table.limit;
  const last = Math.ceil((end - table.phys_base) / table.unit_size);
  let from = table.unitOf(start);
  for (let run = table.nextSetRange(from, last); run !== null; run = table.nextSetRange(from, last)) {
    yield* arch_accept_memory(table.unitAddr(run.start), table.unitAddr(run.end));
    table.bitmap_clear(run.start, run.end - run.start);
    from = run.end;
  }
}
