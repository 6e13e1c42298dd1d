import { availableParallelism } from 'node:os';
import type { TraceOptions } from '../traces/index.ts';
import { didYouMean } from './suggest.ts';
import { EXIT_CODES_HELP, UsageError } from './usage_error.ts';

/**
 * Command-line parsing for one command: `--flag value`, `--flag=value`, repeatable flags,
 * boolean switches and positional arguments. Anything unknown is a UsageError (exit 2) that
 * suggests the closest flag.
 */
export interface OptionSpec {
  /** Takes a value (`--seed 3`) or is a switch (`--json`). */
  value: boolean;
  repeat?: boolean;
  /** Value placeholder for help, e.g. "N", "k=v". */
  arg?: string;
  help: string;
}

export interface CommandSyntax {
  name: string;
  summary: string;
  /** Positional arguments, e.g. "<experiment>" or "DIR...". */
  positional: { name: string; min: number; max: number };
  options: Record<string, OptionSpec>;
  /** Extra paragraphs for --help. */
  details?: string;
  /** Takes the trace flags of traces/ (--trace FILE, --otlp [URL], --trace-level, ...). */
  trace?: boolean;
}

export interface ParsedArgs {
  /** Trace flags (commands with `trace: true`), parsed by traces/; null for other commands. */
  trace: TraceOptions | null;
  positional: string[];
  values: Map<string, string[]>;
  switches: Set<string>;
  help: boolean;
}

export function parseArgs(syntax: CommandSyntax, argv: string[]): ParsedArgs {
  const parsed: ParsedArgs = { trace: null, positional: [], values: new Map(), switches: new Set(), help: false };
  const flags = Object.keys(syntax.options);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--help' || a === '-h') {
      parsed.help = true;
      continue;
    }
    if (a === '--') {
      parsed.positional.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
      const spec = Object.hasOwn(syntax.options, name) ? syntax.options[name] : undefined;
      if (spec === undefined) {
        throw new UsageError(`--${name}`, `unknown option of 'cvmsim ${syntax.name}'${didYouMean(name, flags).replace(/'([^']+)'/, "'--$1'")}; options: ${flags.map((f) => `--${f}`).join(' ') || 'none'}`);
      }
      if (!spec.value) {
        if (eq >= 0) throw new UsageError(`--${name}`, `expected no value (it is a switch), got '${a.slice(eq + 1)}'`);
        parsed.switches.add(name);
        continue;
      }
      let v: string;
      if (eq >= 0) v = a.slice(eq + 1);
      else {
        const next = argv[i + 1];
        if (next === undefined || (next.startsWith('--') && next.length > 2)) throw new UsageError(`--${name}`, `expected a value (${spec.arg ?? 'value'}), got ${next === undefined ? 'the end of the command line' : `'${next}'`}`);
        v = next;
        i++;
      }
      const list = parsed.values.get(name) ?? [];
      if (list.length > 0 && spec.repeat !== true) throw new UsageError(`--${name}`, `expected once, got it twice ('${list[0]}' and '${v}')`);
      list.push(v);
      parsed.values.set(name, list);
      continue;
    }
    parsed.positional.push(a);
  }
  if (parsed.help) return parsed;
  const { min, max, name } = syntax.positional;
  if (parsed.positional.length < min) throw new UsageError(name, `expected ${min === max ? min : `at least ${min}`} argument(s) ${name}, got ${parsed.positional.length}; see 'cvmsim ${syntax.name} --help'`);
  if (parsed.positional.length > max) {
    const expected = max === 0 ? 'none' : `at most ${max} argument(s) ${name}`;
    throw new TooManyArguments(name === '' ? 'arguments' : name, `expected ${expected}, got ${parsed.positional.length}: ${parsed.positional.join(' ')}`, parsed.positional);
  }
  return parsed;
}

/** More positional arguments than the command takes; `given` are all of them. */
export class TooManyArguments extends UsageError {
  constructor(
    field: string,
    message: string,
    readonly given: string[],
  ) {
    super(field, message);
  }
}

export function one(p: ParsedArgs, name: string): string | undefined {
  return p.values.get(name)?.[0];
}

export function all(p: ParsedArgs, name: string): string[] {
  return p.values.get(name) ?? [];
}

export function helpText(s: CommandSyntax): string {
  const lines = [`usage: cvmsim ${s.name}${s.positional.max > 0 ? ` ${s.positional.name}` : ''}${Object.keys(s.options).length > 0 ? ' [options]' : ''}`, '', s.summary];
  const entries = Object.entries(s.options);
  if (entries.length > 0) {
    lines.push('', 'options:');
    const left = entries.map(([k, o]) => `  --${k}${o.value ? ` ${o.arg ?? 'VALUE'}` : ''}`);
    const width = Math.max(...left.map((l) => l.length)) + 2;
    entries.forEach(([, o], i) => lines.push(`${left[i]!.padEnd(width)}${o.help}${o.repeat === true ? ' (repeatable)' : ''}`));
    lines.push(`${'  --help'.padEnd(width)}this help`);
  }
  if (s.trace === true) lines.push('', TRACE_HELP);
  if (s.details !== undefined) lines.push('', s.details);
  lines.push('', EXIT_CODES_HELP);
  return `${lines.join('\n')}\n`;
}

/**
 * `--jobs J`: worker threads, default the number of cores. More threads than cores is allowed
 * (a shared machine may want it) but warned about: the runs then share the cores.
 */
export function parseJobs(text: string | undefined, defaultJobs: number, cores = availableParallelism(), warn: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): number {
  if (text === undefined) return defaultJobs;
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(n >= 1 && n <= 1024)) throw new UsageError('--jobs', `expected a number of worker threads in [1, 1024], got '${text}'`);
  if (n > cores) warn(`warning: --jobs ${n} is more than the ${cores} core(s) of this machine; the runs will share them (each slower, none sooner)`);
  return n;
}

const TRACE_HELP = `trace options (OpenTelemetry spans in virtual time; see README, "Traces"):
  --trace FILE         write the trace to FILE: .jaeger.json (Jaeger UI upload), .otlp.json, .perfetto.json (repeatable)
  --otlp [URL]         export live over OTLP/HTTP (default http://localhost:4318 or OTEL_EXPORTER_OTLP_ENDPOINT)
  --otlp-required      exit 3 when the OTLP export fails (otherwise a warning)
  --trace-level L      run | phase | op | lock (default op)
  --trace-max-spans N  span budget (default 100000); cut spans are counted on their parent
  --trace-epoch T      ISO instant (with zone) or "now" that virtual time 0 maps to (default 2026-01-01T00:00:00Z)`;
