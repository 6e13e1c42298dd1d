import { describe, expect, it } from 'vitest';
import type { JaegerFile } from '../../traces/jaeger_json.ts';
import { flattenOtlp, tracedContention } from './contention_scenario.ts';

const EPOCH_US = Date.parse('2026-01-01T00:00:00Z') * 1000;

describe('.jaeger.json loads in the Jaeger UI upload box', () => {
  it('has the upload format: data[0] with traceID, spans and processes', async () => {
    const { jaeger, summary } = await tracedContention(2, { level: 'lock' });
    const file = JSON.parse(jaeger) as JaegerFile;
    expect(Object.keys(file)).toEqual(['data', 'total', 'limit', 'offset', 'errors']);
    expect(file.data).toHaveLength(1);
    const trace = file.data[0]!;
    expect(trace.traceID).toMatch(/^[0-9a-f]{32}$/);
    expect(trace.traceID).toBe(summary.traceId);
    expect(trace.spans).toHaveLength(summary.spans);
  });

  it('every span has the required fields, startTime > 0, and a processID that resolves', async () => {
    const trace = (JSON.parse((await tracedContention(2, { level: 'lock' })).jaeger) as JaegerFile).data[0]!;
    for (const s of trace.spans) {
      expect(s.traceID).toBe(trace.traceID);
      expect(s.spanID).toMatch(/^[0-9a-f]{16}$/);
      expect(typeof s.operationName).toBe('string');
      expect(Number.isSafeInteger(s.startTime) && s.startTime > 0).toBe(true);
      expect(Number.isSafeInteger(s.duration) && s.duration >= 0).toBe(true);
      expect(Array.isArray(s.tags) && Array.isArray(s.logs) && Array.isArray(s.references)).toBe(true);
      expect(trace.processes[s.processID]).toBeDefined();
    }
    expect(new Set(trace.spans.map((s) => s.spanID)).size).toBe(trace.spans.length);
  });

  it('one process per service, and every reference resolves with the parent first', async () => {
    const trace = (JSON.parse((await tracedContention(2, { level: 'lock' })).jaeger) as JaegerFile).data[0]!;
    expect(Object.values(trace.processes).map((p) => p.serviceName).sort()).toEqual(['cvmsim', 'guest', 'tdx-module']);
    const ids = new Set(trace.spans.map((s) => s.spanID));
    const roots = trace.spans.filter((s) => s.references.length === 0);
    expect(roots.map((s) => s.operationName)).toEqual(['contention']);
    for (const s of trace.spans) {
      for (const r of s.references) {
        expect(r.traceID).toBe(trace.traceID);
        expect(ids.has(r.spanID)).toBe(true);
      }
      if (s.references.length > 0) expect(s.references[0]!.refType).toBe('CHILD_OF');
    }
  });

  it('times are microseconds from the epoch, and events are logs with an event field', async () => {
    const { jaeger, otlp } = await tracedContention(2, { level: 'lock' });
    const trace = (JSON.parse(jaeger) as JaegerFile).data[0]!;
    const flat = new Map(flattenOtlp(otlp).map((s) => [s.spanId, s]));
    for (const s of trace.spans) {
      const o = flat.get(s.spanID)!;
      expect(s.startTime).toBe(EPOCH_US + Math.floor(o.startNs / 1000));
      expect(s.startTime + s.duration).toBe(EPOCH_US + Math.floor(o.endNs / 1000));
      expect(s.logs.map((l) => l.fields[0])).toEqual(o.events.map((e) => ({ key: 'event', type: 'string', value: e.name })));
    }
    const busy = trace.spans.find((s) => s.logs.some((l) => l.fields[0]!.value === 'lock_busy'))!;
    expect(busy.logs[0]!.timestamp).toBe(EPOCH_US + 6);
    expect(busy.tags).toContainEqual({ key: 'tdx.status.code', type: 'string', value: '0x8000020000000000' });
  });
});
