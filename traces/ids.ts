import type { IdGenerator } from '@opentelemetry/sdk-trace-base';
import { streamSeed } from '../sim/index.ts';

const MASK64 = 0xffffffffffffffffn;

/**
 * Trace and span ids drawn from SplitMix64 seeded from the run, so the same run gives the same
 * ids (the SDK's RandomIdGenerator calls Math.random). The seed covers the run seed, the
 * experiment, its parameters and the epoch: two experiments run with seed 1 and sent to the same
 * Jaeger must not share a trace id, while the same run must reproduce its bytes.
 */
export class SeededIdGenerator implements IdGenerator {
  private state: bigint;

  constructor(seedText: string, rootSeed: number) {
    this.state = BigInt(`0x${streamSeed(rootSeed, `cvmsim.trace.ids\u0000${seedText}`)}`);
  }

  generateTraceId(): string {
    return this.nonZeroHex() + this.nonZeroHex();
  }

  generateSpanId(): string {
    return this.nonZeroHex();
  }

  /** 16 lowercase hex digits, never all zeros (an invalid id in W3C trace context). */
  private nonZeroHex(): string {
    for (;;) {
      const v = this.next();
      if (v !== 0n) return v.toString(16).padStart(16, '0');
    }
  }

  /** SplitMix64 (Steele, Lea, Flood 2014): a full-period 64-bit sequence, well mixed. */
  private next(): bigint {
    this.state = (this.state + 0x9e3779b97f4a7c15n) & MASK64;
    let z = this.state;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
    return z ^ (z >> 31n);
  }
}
