import { assert } from '../../sim/index.ts';
import { SZ_1M, SZ_4G, hex } from './constants.ts';

/** A range of guest-physical addresses [start, end), bytes. */
export interface PhysRange {
  start: number;
  end: number;
}

/**
 * The guest's RAM layout as firmware reports it (e820 / EFI memory map) for a QEMU q35 machine:
 * low RAM below the 32-bit PCI hole and high RAM from 4 GiB up.
 */
export interface MemoryMap {
  memoryBytes: number;
  /** Usable RAM, ascending, non-overlapping. */
  ram: PhysRange[];
  /** Top of guest RAM below 4 GiB as QEMU splits it (before firmware reservations). */
  belowFourG: number;
  /** Highest RAM address (exclusive). */
  maxAddr: number;
}

export interface MemoryMapOptions {
  /**
   * Bytes at the top of low RAM that firmware keeps for itself (ACPI tables and NVS, runtime
   * services data). ESTIMATE 8.5 MiB [estimate:firmware-reservations]: OVMF reserves a few MiB there; the value leaves the end of
   * low RAM unaligned to 2 MiB, as real maps usually are.
   */
  firmwareReservedTopBytes?: number;
}

/** 0xB0000000: QEMU q35 keeps all RAM below 4 GiB when the guest has less than 2.75 GiB ([qemu:hw/i386/pc_q35.c]). */
const Q35_LOWMEM_LIMIT = 0xb0000000;
/** 0x80000000: otherwise the split moves down to 2 GiB so high RAM is gigabyte aligned ([qemu:hw/i386/pc_q35.c]). */
const Q35_LOWMEM_SPLIT = 0x80000000;
/** The legacy VGA/BIOS hole: RAM is [0, 640 KiB) and [1 MiB, ...). */
const LEGACY_HOLE_START = 0xa0000;

export function buildMemoryMap(memoryBytes: number, options: MemoryMapOptions = {}): MemoryMap {
  assert(Number.isSafeInteger(memoryBytes) && memoryBytes >= 64 * SZ_1M, 'guest memory must be at least 64 MiB', memoryBytes);
  const reservedTop = options.firmwareReservedTopBytes ?? 8 * SZ_1M + 512 * 1024;
  const belowFourG = memoryBytes >= Q35_LOWMEM_LIMIT ? Q35_LOWMEM_SPLIT : memoryBytes;
  const above = memoryBytes - belowFourG;
  const lowEnd = belowFourG - reservedTop;
  assert(lowEnd > 2 * SZ_1M, 'low RAM too small for the firmware reservation', { belowFourG: hex(belowFourG), reservedTop });
  const ram: PhysRange[] = [
    { start: 0, end: LEGACY_HOLE_START },
    { start: SZ_1M, end: lowEnd },
  ];
  if (above > 0) ram.push({ start: SZ_4G, end: SZ_4G + above });
  return { memoryBytes, ram, belowFourG, maxAddr: ram[ram.length - 1]!.end };
}

export function totalBytes(ranges: readonly PhysRange[]): number {
  return ranges.reduce((sum, r) => sum + (r.end - r.start), 0);
}

/** The parts of `ranges` not covered by `cut` (both ascending, non-overlapping). */
export function subtractRanges(ranges: readonly PhysRange[], cut: readonly PhysRange[]): PhysRange[] {
  const out: PhysRange[] = [];
  for (const r of ranges) {
    let start = r.start;
    for (const c of cut) {
      if (c.end <= start || c.start >= r.end) continue;
      if (c.start > start) out.push({ start, end: c.start });
      start = Math.max(start, c.end);
      if (start >= r.end) break;
    }
    if (start < r.end) out.push({ start, end: r.end });
  }
  return out;
}

/** The first `bytes` of RAM by address (what firmware accepts before handing over). */
export function lowestBytes(ranges: readonly PhysRange[], bytes: number): PhysRange[] {
  const out: PhysRange[] = [];
  let left = bytes;
  for (const r of ranges) {
    if (left <= 0) break;
    const take = Math.min(left, r.end - r.start);
    out.push({ start: r.start, end: r.start + take });
    left -= take;
  }
  return out;
}
