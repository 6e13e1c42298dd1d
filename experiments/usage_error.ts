/**
 * Bad input from the user: a flag, a parameter, a config file, an experiment name. The CLI prints
 * the message and exits 2 before anything is written. The message names the field, what was
 * expected and what was given.
 */
export class UsageError extends Error {
  override name = 'UsageError';
  constructor(
    /** The flag, parameter or file the error is about, e.g. `--set memory_gib`. */
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

/** Exit codes of every cvmsim command. */
export const EXIT_OK = 0;
/** A regression, a failed run, a divergence. */
export const EXIT_FAILED = 1;
/** Bad input (UsageError). */
export const EXIT_USAGE = 2;
/** A failed `--otlp-required` export (traces/). */
export const EXIT_OTLP = 3;
/**
 * Interrupted: 128 + the signal's number, the shell's convention (SIGHUP 129, SIGINT 130,
 * SIGTERM 143). A sweep keeps its finished runs in its journal.
 */
export const EXIT_INTERRUPTED = 130;

/** Every exit code, for --help. */
export const EXIT_CODES_HELP = [
  'exit codes:',
  '  0            done',
  '  1            a run failed, a regression, a divergence, a fuzz failure, or an output could not be written (disk full, I/O error)',
  '  2            bad input: an argument, parameter, config or baseline file, or an output path that cannot be used',
  '  3            a failed --otlp-required export',
  '  129 130 143  interrupted by SIGHUP, SIGINT, SIGTERM (128 + the signal number)',
].join('\n');
