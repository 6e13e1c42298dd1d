import type { HrTime } from '@opentelemetry/api';

/**
 * Virtual time to OpenTelemetry time. A span gets [seconds, nanoseconds] pairs for both start
 * and end: the SDK treats a plain number below performance.now() as a performance timestamp
 * and silently adds the wall-clock offset to it (sdk-trace Span._getTime). Virtual zero maps to
 * a fixed, non-zero epoch because the Jaeger UI drops spans whose start is 0.
 */
export class VirtualClock {
  constructor(
    /** The epoch as [seconds, nanoseconds] since the Unix epoch. */
    readonly epoch: [number, number],
  ) {}

  /** Virtual nanoseconds (a safe integer) to an HrTime. */
  toHrTime(virtualNs: number): HrTime {
    const total = this.epoch[1] + virtualNs;
    const carry = Math.floor(total / 1_000_000_000);
    return [this.epoch[0] + carry, total - carry * 1_000_000_000];
  }

  /** An HrTime back to virtual nanoseconds (exact within a run's 104 simulated days). */
  toVirtualNs(t: HrTime): number {
    return (t[0] - this.epoch[0]) * 1_000_000_000 + (t[1] - this.epoch[1]);
  }
}

/** Whole microseconds since the Unix epoch, rounded down (the Jaeger JSON unit). */
export function hrTimeToMicros(t: HrTime): number {
  return t[0] * 1_000_000 + Math.floor(t[1] / 1000);
}
