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
/** Interrupted by SIGINT/SIGTERM (128 + SIGINT, the shell's convention); completed runs are kept. */
export const EXIT_INTERRUPTED = 130;
