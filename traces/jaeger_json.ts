import { SpanStatusCode, type AttributeValue, type Attributes } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { hrTimeToMicros } from './hrtime.ts';

/**
 * The Jaeger UI's upload format: the body of Jaeger's /api/traces/{id}, one trace,
 * `{"data":[{traceID, spans, processes}]}`, times in microseconds. The UI builds its tree from
 * each span's first reference (jaeger-ui selectors/trace.js getTraceSpanIdsAsTree), so the parent
 * (CHILD_OF) comes first and links follow as FOLLOWS_FROM; it drops spans whose startTime is 0.
 */
export interface JaegerTag {
  key: string;
  type: 'string' | 'bool' | 'int64' | 'float64';
  value: string | boolean | number;
}

export interface JaegerReference {
  refType: 'CHILD_OF' | 'FOLLOWS_FROM';
  traceID: string;
  spanID: string;
}

export interface JaegerSpan {
  traceID: string;
  spanID: string;
  operationName: string;
  references: JaegerReference[];
  startTime: number;
  duration: number;
  tags: JaegerTag[];
  logs: { timestamp: number; fields: JaegerTag[] }[];
  processID: string;
  warnings: null;
  flags: number;
}

export interface JaegerTrace {
  traceID: string;
  spans: JaegerSpan[];
  processes: Record<string, { serviceName: string; tags: JaegerTag[] }>;
  warnings: null;
}

export interface JaegerFile {
  data: JaegerTrace[];
  total: number;
  limit: number;
  offset: number;
  errors: null;
}

/** Spans of one trace (in export order) as a Jaeger upload file. */
export function toJaegerFile(traceId: string, spans: readonly ReadableSpan[]): JaegerFile {
  const processIds = new Map<string, string>();
  const processes: JaegerTrace['processes'] = {};
  const out: JaegerSpan[] = [];
  for (const s of spans) {
    const resource = s.resource.attributes;
    const service = String(resource['service.name'] ?? 'unknown_service');
    let processID = processIds.get(service);
    if (processID === undefined) {
      processID = `p${processIds.size + 1}`;
      processIds.set(service, processID);
      const tags = toTags(resource).filter((t) => t.key !== 'service.name');
      processes[processID] = { serviceName: service, tags };
    }
    out.push(toJaegerSpan(s, processID));
  }
  return { data: [{ traceID: traceId, spans: out, processes, warnings: null }], total: 0, limit: 0, offset: 0, errors: null };
}

function toJaegerSpan(s: ReadableSpan, processID: string): JaegerSpan {
  const ctx = s.spanContext();
  const references: JaegerReference[] = [];
  if (s.parentSpanContext !== undefined) {
    references.push({ refType: 'CHILD_OF', traceID: s.parentSpanContext.traceId, spanID: s.parentSpanContext.spanId });
  }
  for (const link of s.links) {
    references.push({ refType: 'FOLLOWS_FROM', traceID: link.context.traceId, spanID: link.context.spanId });
  }
  const startTime = hrTimeToMicros(s.startTime);
  const tags = toTags(s.attributes);
  tags.push({ key: 'span.kind', type: 'string', value: SPAN_KIND_NAMES[s.kind] ?? 'internal' });
  if (s.status.code === SpanStatusCode.ERROR) {
    tags.push({ key: 'error', type: 'bool', value: true });
    tags.push({ key: 'otel.status_code', type: 'string', value: 'ERROR' });
    if (s.status.message !== undefined) tags.push({ key: 'otel.status_description', type: 'string', value: s.status.message });
  }
  return {
    traceID: ctx.traceId,
    spanID: ctx.spanId,
    operationName: s.name,
    references,
    startTime,
    duration: hrTimeToMicros(s.endTime) - startTime,
    tags,
    logs: s.events.map((e) => ({
      timestamp: hrTimeToMicros(e.time),
      fields: [{ key: 'event', type: 'string', value: e.name }, ...toTags(e.attributes ?? {})],
    })),
    processID,
    warnings: null,
    flags: ctx.traceFlags,
  };
}

/** Jaeger's names for OpenTelemetry span kinds (its OTLP translator adds the same tag). */
const SPAN_KIND_NAMES: Record<number, string> = { 0: 'internal', 1: 'server', 2: 'client', 3: 'producer', 4: 'consumer' };

function toTags(attributes: Attributes): JaegerTag[] {
  const tags: JaegerTag[] = [];
  for (const key of Object.keys(attributes)) {
    const v = attributes[key];
    if (v !== undefined) tags.push(toTag(key, v));
  }
  return tags;
}

function toTag(key: string, v: AttributeValue): JaegerTag {
  if (typeof v === 'string') return { key, type: 'string', value: v };
  if (typeof v === 'boolean') return { key, type: 'bool', value: v };
  if (typeof v === 'number') return { key, type: Number.isInteger(v) ? 'int64' : 'float64', value: v };
  return { key, type: 'string', value: JSON.stringify(v) };
}
