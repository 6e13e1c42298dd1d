import { GiB, MiB } from '../../sim/clock.ts';

/**
 * Sizes and formatting the host side shares whatever the technology (TDX module, SNP firmware,
 * KVM): a 4 KiB base page, a 2 MiB region (the unit of per-2M bookkeeping: one PD entry of the
 * Secure EPT, one 2M RMP entry, one 2M folio), and addresses and status codes printed in hex.
 */

/** The base page: a 4K Secure-EPT leaf, a 4K RMP entry, an order-0 guest_memfd folio. */
export const PAGE_SIZE = 4096;
/** A 2 MiB region (a 2M S-EPT leaf or PD entry, a 2M RMP entry, a 2M folio). */
export const SIZE_2M = 2 * MiB;
export const PAGES_PER_2M = SIZE_2M / PAGE_SIZE;
export const SIZE_1G = GiB;

/**
 * Hex form for traces and messages. A bigint (a TDX status) is printed as its 64 bits,
 * 0x8000020000000092; a number (an address) without padding, 0x200000.
 */
export function hex(value: bigint | number): string {
  return `0x${value.toString(16).padStart(typeof value === 'bigint' ? 16 : 1, '0')}`;
}
