import { readFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { join } from 'node:path';
import { helpText, parseArgs, TooManyArguments, type ParsedArgs } from './args.ts';
import { err, out, type Command } from './command.ts';
import { checkDeterminismCommand } from './commands/check_determinism.ts';
import { describe } from './commands/describe.ts';
import { fuzz } from './commands/fuzz.ts';
import { list } from './commands/list.ts';
import { merge } from './commands/merge.ts';
import { regress } from './commands/regress.ts';
import { report } from './commands/report.ts';
import { run } from './commands/run.ts';
import { suite } from './commands/suite.ts';
import { sweep } from './commands/sweep.ts';
// traces/options.ts, not traces/index.ts: parsing flags must not load OpenTelemetry (startup time).
import { parseTraceFlags, TraceUsageError } from '../traces/options.ts';
import { Interrupted } from './pool.ts';
import { describeFsError } from './output_paths.ts';
import { didYouMean } from './suggest.ts';
import { PACKAGE_ROOT } from './paths.ts';
import { EXIT_CODES_HELP, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, UsageError } from './usage_error.ts';

/** The cvmsim command line: dispatch to a sub-command, map errors to exit codes. */
export const COMMANDS: Command[] = [list, describe, run, sweep, merge, report, regress, checkDeterminismCommand, suite, fuzz];

export function topHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length)) + 2;
  return [
    'usage: cvmsim <command> [options]   (cvmsim <command> --help for its options)',
    '',
    'A deterministic discrete-event simulator of confidential-VM (TDX, SEV-SNP) memory management.',
    '',
    'commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}${c.summary.split('. ')[0]!.replace(/\.$/, '')}`),
    '',
    'options: --help, --version',
    '',
    EXIT_CODES_HELP,
    '',
  ].join('\n');
}

/** "cvmsim 0.1.0", from package.json. */
export function versionLine(): string {
  const pkg = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string };
  return `cvmsim ${pkg.version}`;
}

/**
 * `--otlp` takes the next argument as its URL only when it starts with http(s):// (so that
 * `--otlp <experiment>` works); a word there that is no URL would otherwise be reported as one
 * argument too many. Returns that word, if any.
 */
function otlpWordTakenAsArgument(argv: string[]): string | undefined {
  for (let i = 0; i + 1 < argv.length; i++) {
    const next = argv[i + 1]!;
    if (argv[i] === '--otlp' && !next.startsWith('-') && !/^https?:\/\//i.test(next)) return next;
  }
  return undefined;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    out(topHelp());
    return name === undefined ? EXIT_USAGE : 0;
  }
  if (name === '--version' || name === '-V' || name === 'version') {
    out(versionLine());
    return 0;
  }
  const cmd = COMMANDS.find((c) => c.name === name);
  try {
    if (cmd === undefined) {
      throw new UsageError('command', `unknown command '${name}'${didYouMean(name, COMMANDS.map((c) => c.name))}; commands: ${COMMANDS.map((c) => c.name).join(', ')}`);
    }
    const args = commandArgs(cmd, rest);
    if (args.help) {
      out(helpText(cmd));
      return 0;
    }
    return await cmd.run(args);
  } catch (e) {
    return reportError(e, cmd?.name ?? '', name);
  }
}

/** The command's arguments, trace flags (traces/) taken out first. */
function commandArgs(cmd: Command, rest: string[]): ParsedArgs {
  let argv = rest;
  let trace = null;
  if (cmd.trace === true) {
    const t = parseTraceFlags(rest);
    trace = t.options;
    argv = t.rest;
  }
  try {
    const args = parseArgs(cmd, argv);
    args.trace = trace;
    return args;
  } catch (e) {
    const word = otlpWordTakenAsArgument(rest);
    if (e instanceof TooManyArguments && word !== undefined && e.given.includes(word)) {
      throw new UsageError('--otlp', `expected an http:// or https:// URL, got '${word}' (without a URL, --otlp uses OTEL_EXPORTER_OTLP_ENDPOINT or http://localhost:4318)`);
    }
    throw e;
  }
}

/** One message for what ended the command, and its exit code. */
function reportError(e: unknown, command: string, name: string): number {
  if (e instanceof UsageError || e instanceof TraceUsageError) {
    err(`cvmsim ${command}: bad input: ${e.message}`.replace('cvmsim : ', 'cvmsim: '));
    return EXIT_USAGE;
  }
  if (e instanceof Interrupted) {
    err(e.journal === null
      ? `cvmsim ${name}: interrupted by ${e.signal}: no results were written`
      : `cvmsim ${name}: interrupted by ${e.signal}: finished runs are kept in ${e.journal}; run the same command again to resume`);
    return 128 + (osConstants.signals[e.signal] ?? EXIT_INTERRUPTED - 128);
  }
  // A file that could not be written (a full disk, a read-only file system): one line, no stack.
  const fsMessage = describeFsError(e);
  if (fsMessage !== undefined) {
    err(`cvmsim ${name}: ${fsMessage}`);
    return EXIT_FAILED;
  }
  err(`cvmsim ${name}: failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  return EXIT_FAILED;
}
