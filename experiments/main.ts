import { helpText, parseArgs } from './args.ts';
import { err, out, type Command } from './command.ts';
import { checkDeterminismCommand } from './commands/check_determinism.ts';
import { describe } from './commands/describe.ts';
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
import { EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, UsageError } from './usage_error.ts';

/** The cvmsim command line: dispatch to a sub-command, map errors to exit codes. */
export const COMMANDS: Command[] = [list, describe, run, sweep, merge, report, regress, checkDeterminismCommand, suite];

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
    'exit codes: 0 done, 1 a regression or a failed run, 2 bad input',
    '',
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    out(topHelp());
    return name === undefined ? EXIT_USAGE : 0;
  }
  const cmd = COMMANDS.find((c) => c.name === name);
  try {
    if (cmd === undefined) {
      throw new UsageError('command', `unknown command '${name}'${didYouMean(name, COMMANDS.map((c) => c.name))}; commands: ${COMMANDS.map((c) => c.name).join(', ')}`);
    }
    let argv = rest;
    let trace = null;
    if (cmd.trace === true) {
      const t = parseTraceFlags(rest);
      trace = t.options;
      argv = t.rest;
    }
    const args = parseArgs(cmd, argv);
    args.trace = trace;
    if (args.help) {
      out(helpText(cmd));
      return 0;
    }
    return await cmd.run(args);
  } catch (e) {
    if (e instanceof UsageError || e instanceof TraceUsageError) {
      err(`cvmsim ${cmd?.name ?? ''}: bad input: ${e.message}`.replace('cvmsim : ', 'cvmsim: '));
      return EXIT_USAGE;
    }
    if (e instanceof Interrupted) {
      err('interrupted: finished runs are kept in the journal; run the same command again to resume');
      return EXIT_INTERRUPTED;
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
}
