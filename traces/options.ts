/**
 * The trace flags of `cvmsim run` and `cvmsim sweep`, parsed and validated. Bad input throws a
 * TraceUsageError naming the flag and its allowed values; the CLI prints it and exits 2.
 */

/** How much a trace shows: run (root and actor lifetimes) < phase < op < lock (lock waits as spans). */
export type TraceLevel = 'run' | 'phase' | 'op' | 'lock';

export const TRACE_LEVELS: readonly TraceLevel[] = ['run', 'phase', 'op', 'lock'];

/** File endings and the format each selects. */
export const TRACE_FILE_ENDINGS = ['.jaeger.json', '.otlp.json', '.perfetto.json'] as const;
export type TraceFileEnding = (typeof TRACE_FILE_ENDINGS)[number];

export interface TraceOptions {
  /** --trace FILE (repeatable); ending .jaeger.json | .otlp.json | .perfetto.json. */
  files: string[];
  /** --otlp [URL]; null = off; '' = the default endpoint (OTEL_EXPORTER_OTLP_* or localhost:4318). */
  otlp: string | null;
  /** --otlp-required: a failed export makes the exit code 3. Implies --otlp. */
  otlpRequired: boolean;
  /** --trace-level (default 'op'). */
  level: TraceLevel;
  /** --trace-max-spans (default 100000): spans beyond it are cut and counted on their parent. */
  maxSpans: number;
  /** --trace-epoch ISO|now: the wall-clock instant virtual zero maps to (default 2026-01-01T00:00:00Z). */
  epoch: string;
}

/** The Jaeger UI handles about 100k spans per file comfortably (the project's design target). */
export const DEFAULT_MAX_SPANS = 100_000;
export const DEFAULT_EPOCH = '2026-01-01T00:00:00Z';

export const defaultTraceOptions: TraceOptions = Object.freeze({
  files: [] as string[],
  otlp: null,
  otlpRequired: false,
  level: 'op' as TraceLevel,
  maxSpans: DEFAULT_MAX_SPANS,
  epoch: DEFAULT_EPOCH,
}) as TraceOptions;

/** A bad trace flag: `field` names the flag, the message its allowed values. */
export class TraceUsageError extends Error {
  override name = 'TraceUsageError';
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

const FLAGS_WITH_VALUE = ['--trace', '--trace-level', '--trace-max-spans', '--trace-epoch'] as const;

/**
 * Takes the trace flags out of argv (both `--flag value` and `--flag=value`) and returns the
 * options and the remaining arguments in their original order. `--otlp` takes the next argument
 * as its URL only when it starts with http:// or https://, so `--otlp <experiment>` still works.
 */
export function parseTraceFlags(args: string[]): { options: TraceOptions; rest: string[] } {
  const options: TraceOptions = { ...defaultTraceOptions, files: [] };
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const eq = arg.indexOf('=');
    const flag = arg.startsWith('--') && eq > 0 ? arg.slice(0, eq) : arg;
    const inline = flag === arg ? undefined : arg.slice(eq + 1);
    if (flag === '--otlp') {
      const next = args[i + 1];
      if (inline !== undefined) options.otlp = parseOtlpUrl(inline);
      else if (next !== undefined && /^https?:\/\//i.test(next)) options.otlp = parseOtlpUrl(args[++i]!);
      else options.otlp = '';
      continue;
    }
    if (flag === '--otlp-required') {
      if (inline !== undefined) throw new TraceUsageError('--otlp-required', `takes no value (got "${inline}")`);
      options.otlpRequired = true;
      continue;
    }
    if ((FLAGS_WITH_VALUE as readonly string[]).includes(flag)) {
      let value = inline;
      if (value === undefined) {
        value = args[i + 1];
        if (value === undefined || value.startsWith('--')) throw new TraceUsageError(flag, `needs a value (${allowedFor(flag)})`);
        i++;
      }
      applyValue(options, flag, value);
      continue;
    }
    rest.push(arg);
  }
  if (options.otlpRequired && options.otlp === null) options.otlp = '';
  return { options, rest };
}

/** Checks options built by code rather than parsed from argv; throws TraceUsageError. */
export function validateTraceOptions(options: TraceOptions): void {
  for (const file of options.files) checkTraceFile(file);
  if (options.otlp !== null && options.otlp !== '') parseOtlpUrl(options.otlp);
  if (!TRACE_LEVELS.includes(options.level)) throw new TraceUsageError('--trace-level', `"${String(options.level)}" is not one of ${TRACE_LEVELS.join(', ')}`);
  checkMaxSpans(String(options.maxSpans));
  parseEpoch(options.epoch);
}

function applyValue(options: TraceOptions, flag: string, value: string): void {
  switch (flag) {
    case '--trace':
      options.files.push(checkTraceFile(value));
      return;
    case '--trace-level':
      if (!(TRACE_LEVELS as readonly string[]).includes(value)) {
        throw new TraceUsageError(flag, `"${value}" is not one of ${TRACE_LEVELS.join(', ')}`);
      }
      options.level = value as TraceLevel;
      return;
    case '--trace-max-spans':
      options.maxSpans = checkMaxSpans(value);
      return;
    case '--trace-epoch':
      parseEpoch(value);
      options.epoch = value;
      return;
  }
}

function allowedFor(flag: string): string {
  switch (flag) {
    case '--trace': return `a file ending ${TRACE_FILE_ENDINGS.join(', ')}`;
    case '--trace-level': return TRACE_LEVELS.join(', ');
    case '--trace-max-spans': return 'a positive integer';
    default: return 'an ISO 8601 instant with a zone, e.g. 2026-01-01T00:00:00Z, or "now"';
  }
}

/** The format a trace file's name selects. */
export function traceFileEnding(file: string): TraceFileEnding | null {
  return TRACE_FILE_ENDINGS.find((e) => file.endsWith(e) && file.length > e.length) ?? null;
}

function checkTraceFile(file: string): string {
  if (traceFileEnding(file) === null) {
    throw new TraceUsageError('--trace', `"${file}" must end in ${TRACE_FILE_ENDINGS.join(', ')}`);
  }
  return file;
}

function checkMaxSpans(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < 1) {
    throw new TraceUsageError('--trace-max-spans', `"${value}" is not a positive integer`);
  }
  return n;
}

function parseOtlpUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new TraceUsageError('--otlp', `"${value}" is not a URL (expected http://host:4318 or https://...)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new TraceUsageError('--otlp', `"${value}" must be an http:// or https:// URL`);
  }
  return value;
}

/** Same-zone ISO 8601: a date, or a date and time with Z or an offset (a zone-less time is local, so not reproducible). */
const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2}))?$/;

/**
 * The epoch as [seconds, nanoseconds] since the Unix epoch. "now" reads the wall clock: it is
 * the one place traces look at it, and only when asked. Sub-millisecond digits are kept.
 */
export function parseEpoch(value: string, wallClockMs: () => number = Date.now): [number, number] {
  if (value === 'now') {
    const ms = wallClockMs();
    return [Math.floor(ms / 1000), (ms % 1000) * 1_000_000];
  }
  const ms = ISO_INSTANT.test(value) ? Date.parse(value) : NaN;
  if (!Number.isFinite(ms)) {
    throw new TraceUsageError('--trace-epoch', `"${value}" is not "now" or an ISO 8601 instant with a zone, e.g. ${DEFAULT_EPOCH}`);
  }
  if (ms <= 0) throw new TraceUsageError('--trace-epoch', `"${value}" must be after 1970-01-01T00:00:00Z (the Jaeger UI drops spans starting at 0)`);
  const fraction = /\.(\d+)/.exec(value.replace(/^[^T]*/, ''))?.[1] ?? '';
  const subMsNanos = Number(fraction.padEnd(9, '0').slice(3, 9));
  const seconds = Math.floor(ms / 1000);
  return [seconds, (ms - seconds * 1000) * 1_000_000 + subMsNanos];
}
