import { assert } from '../../sim/assert.ts';

/**
 * One bit per 4 KiB page, in 32-bit words: the only per-4K state the host side keeps (a 1 TiB
 * guest needs 32 MiB per bitmap, no objects). A 2 MiB region is 16 aligned words, so whole
 * regions are set and counted a word at a time.
 */
export class PageBitmap {
  readonly words: Uint32Array;
  /** Pages set, kept in step with the bits (checked by recount()). */
  count = 0;

  constructor(readonly pages: number) {
    assert(Number.isSafeInteger(pages) && pages >= 0, 'page count must be a non-negative integer', pages);
    this.words = new Uint32Array(Math.ceil(pages / 32));
  }

  test(page: number): boolean {
    return (this.words[page >>> 5]! & (1 << (page & 31))) !== 0;
  }

  set(page: number): void {
    const w = page >>> 5;
    const bit = 1 << (page & 31);
    assert((this.words[w]! & bit) === 0, 'page bit set twice', page);
    this.words[w] = this.words[w]! | bit;
    this.count++;
  }

  /** Clears every page (a file truncated whole). */
  clearAll(): void {
    this.words.fill(0);
    this.count = 0;
  }

  /** Pages set in [first, first + n). */
  countRange(first: number, n: number): number {
    let c = 0;
    let p = first;
    const end = first + n;
    while (p < end && (p & 31) !== 0) c += this.test(p++) ? 1 : 0;
    while (p + 32 <= end) c += popcount(this.words[p >>> 5]!), (p += 32);
    while (p < end) c += this.test(p++) ? 1 : 0;
    return c;
  }

  /** Sets every page of [first, first + n); asserts none was set. */
  setRange(first: number, n: number): void {
    let p = first;
    const end = first + n;
    while (p < end && (p & 31) !== 0) this.set(p++);
    while (p + 32 <= end) {
      const w = p >>> 5;
      assert(this.words[w] === 0, 'page bits set twice in a range', { first, n });
      this.words[w] = 0xffffffff;
      this.count += 32;
      p += 32;
    }
    while (p < end) this.set(p++);
  }

  /** Sets only the clear pages of [first, first + n); returns how many it set. */
  fillRange(first: number, n: number): number {
    let added = 0;
    let p = first;
    const end = first + n;
    while (p < end && (p & 31) !== 0) {
      if (!this.test(p)) this.set(p), added++;
      p++;
    }
    while (p + 32 <= end) {
      const w = p >>> 5;
      const clear = 32 - popcount(this.words[w]!);
      this.words[w] = 0xffffffff;
      this.count += clear;
      added += clear;
      p += 32;
    }
    while (p < end) {
      if (!this.test(p)) this.set(p), added++;
      p++;
    }
    return added;
  }

  /** The first set page in [first, first + n), or -1. */
  firstSet(first: number, n: number): number {
    for (let p = first; p < first + n; p++) {
      if ((p & 31) === 0 && p + 32 <= first + n && this.words[p >>> 5] === 0) {
        p += 31;
        continue;
      }
      if (this.test(p)) return p;
    }
    return -1;
  }

  /** Clears only the set pages of [first, first + n); returns how many it cleared. */
  clearRange(first: number, n: number): number {
    let cleared = 0;
    const end = first + n;
    for (let p = first; p < end; p++) {
      if ((p & 31) === 0 && p + 32 <= end) {
        const w = p >>> 5;
        const c = popcount(this.words[w]!);
        this.words[w] = 0;
        cleared += c;
        p += 31;
        continue;
      }
      const w = p >>> 5;
      const bit = 1 << (p & 31);
      if ((this.words[w]! & bit) !== 0) this.words[w] = this.words[w]! & ~bit, cleared++;
    }
    this.count -= cleared;
    return cleared;
  }

  /** Counts the bits from scratch (for invariant checks). */
  recount(): number {
    let c = 0;
    for (let i = 0; i < this.words.length; i++) c += popcount(this.words[i]!);
    return c;
  }
}

function popcount(x: number): number {
  let v = x - ((x >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (((v + (v >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}
