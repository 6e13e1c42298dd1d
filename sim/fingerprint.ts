/**
 * The determinism fingerprint: a rolling hash of every executed event's (time, sequence, kind).
 * Two lanes of 32-bit FNV-1a-style mixing give 64 bits. With recording on, every event's key is
 * kept so that a determinism check can name the first event where two runs diverge.
 */
const INV_TWO32 = 1 / 4294967296;

export class Fingerprint {
  private h1 = 0x811c9dc5 | 0;
  private h2 = 0x01000193 | 0;
  count = 0;
  private times: number[] | null;
  private seqs: number[] | null;
  private kinds: number[] | null;

  constructor(record: boolean) {
    this.times = record ? [] : null;
    this.seqs = record ? [] : null;
    this.kinds = record ? [] : null;
  }

  mix(time: number, seq: number, kind: number): void {
    const lo = time >>> 0; // time mod 2^32 for a non-negative safe integer
    const hi = (time - lo) * INV_TWO32;
    let a = this.h1;
    let b = this.h2;
    a = Math.imul(a ^ lo, 0x01000193);
    b = Math.imul(b ^ hi, 0x85ebca6b);
    a = Math.imul(a ^ seq, 0x01000193);
    b = Math.imul(b ^ kind, 0xc2b2ae35);
    a ^= b >>> 15;
    b ^= a >>> 13;
    this.h1 = a;
    this.h2 = b;
    this.count++;
    if (this.times !== null) {
      this.times.push(time);
      this.seqs!.push(seq);
      this.kinds!.push(kind);
    }
  }

  /** 16 hex digits. */
  hex(): string {
    return (this.h1 >>> 0).toString(16).padStart(8, '0') + (this.h2 >>> 0).toString(16).padStart(8, '0');
  }

  /** The recorded event at index i, or undefined. */
  event(i: number): { time: number; seq: number; kind: number } | undefined {
    if (this.times === null || i >= this.times.length) return undefined;
    return { time: this.times[i]!, seq: this.seqs![i]!, kind: this.kinds![i]! };
  }

  get recorded(): number {
    return this.times?.length ?? 0;
  }
}
