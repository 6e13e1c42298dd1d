import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { JsonTraceSerializer } from '@opentelemetry/otlp-transformer';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import type { VirtualClock } from './hrtime.ts';
import { toJaegerFile } from './jaeger_json.ts';
import { traceFileEnding } from './options.ts';
import { toPerfettoFile } from './perfetto_json.ts';

/**
 * The bytes of a trace file in the format its name selects. `.otlp.json` is
 * JsonTraceSerializer.serializeRequest: exactly the body the OTLP/HTTP exporter sends.
 */
export function traceFileBytes(file: string, traceId: string, spans: readonly ReadableSpan[], clock: VirtualClock): Uint8Array | string {
  switch (traceFileEnding(file)) {
    case '.jaeger.json':
      return JSON.stringify(toJaegerFile(traceId, spans));
    case '.otlp.json':
      return JsonTraceSerializer.serializeRequest(spans as ReadableSpan[]) ?? new Uint8Array();
    case '.perfetto.json':
      return JSON.stringify(toPerfettoFile(traceId, spans, clock));
    default:
      throw new Error(`trace file "${file}" has no known ending`);
  }
}

/** Writes to a temporary file in the same directory, then renames it: readers never see half a file. */
export function writeFileAtomic(file: string, data: Uint8Array | string): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** For sweeps: `out/run.jaeger.json` with tag `p3-s2` becomes `out/run.p3-s2.jaeger.json`. */
export function traceFileForRun(file: string, tag: string): string {
  const ending = traceFileEnding(file);
  if (ending === null) throw new Error(`trace file "${file}" has no known ending`);
  return `${file.slice(0, -ending.length)}.${tag}${ending}`;
}
