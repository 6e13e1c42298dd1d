import { describe, expect, it } from 'vitest';
import { tracedContention } from './contention_scenario.ts';

describe('trace files are a function of the run', () => {
  it('the same seed gives byte-identical .jaeger.json, .otlp.json and .perfetto.json', async () => {
    const a = await tracedContention(11, { level: 'lock' }, true);
    const b = await tracedContention(11, { level: 'lock' }, true);
    expect(a.summary.traceId).toBe(b.summary.traceId);
    expect(a.jaeger).toBe(b.jaeger);
    expect(a.otlp.equals(b.otlp)).toBe(true);
    expect(a.perfetto).toBe(b.perfetto);
  });

  it('another seed gives another trace id and other timestamps', async () => {
    const a = await tracedContention(11, { level: 'lock' }, true);
    const b = await tracedContention(12, { level: 'lock' }, true);
    expect(a.summary.traceId).not.toBe(b.summary.traceId);
    expect(a.jaeger).not.toBe(b.jaeger);
    expect(a.otlp.equals(b.otlp)).toBe(false);
    // Not only the ids: the jittered start of vcpu1 moves its spans.
    const startsOf = (otlp: Buffer) => [...otlp.toString().matchAll(/"startTimeUnixNano":"(\d+)"/g)].map((m) => m[1]).sort();
    expect(startsOf(a.otlp)).not.toEqual(startsOf(b.otlp));
  });

  it('the epoch moves every timestamp and changes the ids, so repeated --trace-epoch now runs do not collide', async () => {
    const a = await tracedContention(11, { level: 'lock' });
    const b = await tracedContention(11, { level: 'lock', epoch: '2027-06-01T12:00:00.000000250Z' });
    expect(a.summary.traceId).not.toBe(b.summary.traceId);
    const firstStart = (otlp: Buffer) => /"startTimeUnixNano":"(\d+)"/.exec(otlp.toString())![1];
    expect(BigInt(firstStart(b.otlp)) - BigInt(firstStart(a.otlp))).toBe(
      (BigInt(Date.parse('2027-06-01T12:00:00Z') - Date.parse('2026-01-01T00:00:00Z')) * 1_000_000n) + 250n,
    );
  });
});
