import type { CommandSyntax, ParsedArgs } from './args.ts';

/** A cvmsim sub-command: its syntax (for parsing and --help) and what it does; returns the exit code. */
export interface Command extends CommandSyntax {
  run(args: ParsedArgs): Promise<number>;
}

export function out(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

export function err(text: string): void {
  process.stderr.write(text.endsWith('\n') ? text : `${text}\n`);
}
