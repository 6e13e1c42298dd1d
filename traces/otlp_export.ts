import { getNumberFromEnv, getStringFromEnv, ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';

/** The OTLP/HTTP port Jaeger (v2, and v1 with OTLP enabled) listens on. */
export const DEFAULT_OTLP_BASE = 'http://localhost:4318';
const TRACES_PATH = 'v1/traces';

/**
 * Spans per request. An OTLP/JSON span of cvmsim is a few hundred bytes, so 2048 spans stay
 * well under the collector's default 20 MiB request limit (confighttp max_request_body_size);
 * a trace that fits in one batch is sent as exactly the bytes of its .otlp.json file.
 */
export const OTLP_BATCH_SPANS = 2048;

/** The OTLP spec's default export timeout; OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT overrides it. */
const DEFAULT_TIMEOUT_MS = 10_000;
/** Extra time past the exporter's own deadline before we stop waiting for it. */
const GUARD_MS = 2_000;

/**
 * The traces endpoint: an explicit --otlp URL (a base such as http://jaeger:4318 gets /v1/traces
 * appended, a URL already ending in /v1/traces is used as is), else
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as is, else OTEL_EXPORTER_OTLP_ENDPOINT plus /v1/traces,
 * else http://localhost:4318/v1/traces: the precedence the OTLP exporter specification gives.
 */
export function resolveOtlpEndpoint(explicit: string, env: (name: string) => string | undefined = getStringFromEnv): string {
  if (explicit !== '') return withTracesPath(explicit);
  const specific = env('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT');
  if (specific !== undefined) return specific;
  const base = env('OTEL_EXPORTER_OTLP_ENDPOINT');
  return withTracesPath(base ?? DEFAULT_OTLP_BASE, true);
}

function withTracesPath(url: string, always = false): string {
  if (!always && /\/v1\/traces\/?$/.test(url)) return url;
  return url.endsWith('/') ? `${url}${TRACES_PATH}` : `${url}/${TRACES_PATH}`;
}

/** The export timeout in ms, as the exporter itself reads it from the environment. */
export function otlpTimeoutMs(): number {
  return getNumberFromEnv('OTEL_EXPORTER_OTLP_TRACES_TIMEOUT') ?? getNumberFromEnv('OTEL_EXPORTER_OTLP_TIMEOUT') ?? DEFAULT_TIMEOUT_MS;
}

export interface OtlpExportResult {
  endpoint: string;
  ok: boolean;
  /** Spans the endpoint accepted (all of them when ok). */
  sent: number;
  error?: string;
}

/**
 * Sends the spans, in order, over OTLP/HTTP with JSON bodies (the exporter's
 * JsonTraceSerializer, the same one that writes .otlp.json). Batches go one after another and the
 * first failure stops the rest. Every request is bounded: the exporter gives up at its timeout
 * (retrying refused connections and 429/502/503/504 within it), and we stop waiting shortly after.
 */
export async function exportOtlp(spans: readonly ReadableSpan[], endpoint: string, batchSpans = OTLP_BATCH_SPANS): Promise<OtlpExportResult> {
  const timeoutMs = otlpTimeoutMs();
  // Batches go one at a time; the exporter frees its concurrency slot a tick after calling back.
  const exporter = new OTLPTraceExporter({ url: endpoint, timeoutMillis: timeoutMs });
  let sent = 0;
  try {
    for (let i = 0; i < spans.length; i += batchSpans) {
      const batch = spans.slice(i, i + batchSpans);
      const result = await exportOnce(exporter, batch, timeoutMs + GUARD_MS);
      if (result.code !== ExportResultCode.SUCCESS) {
        return { endpoint, ok: false, sent, error: describeExportError(result.error) };
      }
      sent += batch.length;
    }
    return { endpoint, ok: true, sent };
  } catch (e) {
    return { endpoint, ok: false, sent, error: describeExportError(e) };
  }
}

function exportOnce(exporter: OTLPTraceExporter, batch: ReadableSpan[], guardMs: number): Promise<ExportResult> {
  return new Promise((resolve) => {
    const guard = setTimeout(() => resolve({ code: ExportResultCode.FAILED, error: new Error(`no answer within ${guardMs} ms`) }), guardMs);
    guard.unref();
    exporter.export(batch, (result) => {
      clearTimeout(guard);
      resolve(result);
    });
  });
}

/** One line: "HTTP 400 Bad Request: <body>", "connect ECONNREFUSED 127.0.0.1:4318", ... */
export function describeExportError(error: unknown): string {
  if (error === undefined || error === null) return 'export failed';
  if (!(error instanceof Error)) return String(error);
  const status = (error as Error & { code?: unknown }).code;
  const data = (error as Error & { data?: unknown }).data;
  if (typeof status === 'number') {
    const body = typeof data === 'string' && data !== '' ? `: ${data.slice(0, 200)}` : '';
    return oneLine(`HTTP ${status} ${error.message}${body}`);
  }
  // Node's happy-eyeballs connect reports an AggregateError with an empty message.
  const inner = (error as Error & { errors?: unknown }).errors;
  if (error.message === '' && Array.isArray(inner) && inner.length > 0) {
    return oneLine(inner.map((e) => (e instanceof Error ? e.message : String(e))).join('; '));
  }
  const code = typeof status === 'string' && !error.message.includes(status) ? ` (${status})` : '';
  return oneLine(`${error.message || error.name}${code}`);
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}
