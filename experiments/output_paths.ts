import { closeSync, mkdirSync, openSync, statSync, unlinkSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { UsageError } from './usage_error.ts';

/**
 * Output paths, checked before a run starts: every output directory is created (with its
 * parents) and proved writable, and a path that cannot be used is bad input (exit 2) named in
 * one line with its cause. A write that fails later (a full disk, an I/O error) is an
 * OutputError (exit 1), again one line naming the file and the cause, never a stack trace.
 *
 * Directories are created one level at a time: Node's mkdirSync({ recursive: true }) loops
 * forever when the parent exists but refuses the entry with ENOENT (/proc/x).
 */

/** Writing an output failed after the checks passed: the CLI prints the message and exits 1. */
export class OutputError extends Error {
  override name = 'OutputError';
  constructor(
    /** The file or directory that could not be written. */
    readonly path: string,
    cause: unknown,
    verb = 'write',
  ) {
    super(`cannot ${verb} ${path}: ${fsCause(cause)}`, { cause });
  }
}

const CAUSES: Record<string, string> = {
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EROFS: 'read-only file system',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOTDIR: 'not a directory',
  EISDIR: 'is a directory',
  ENOENT: 'no such file or directory',
  EEXIST: 'already exists',
  EIO: 'input/output error',
  ENAMETOOLONG: 'name too long',
  ELOOP: 'too many levels of symbolic links',
  EMFILE: 'too many open files',
  EFBIG: 'file too large',
};

/** "read-only file system (EROFS)": a file-system error in words, with its code. */
export function fsCause(e: unknown): string {
  const code = errnoCode(e);
  if (code !== undefined) return `${CAUSES[code] ?? (e as Error).message} (${code})`;
  return e instanceof Error ? e.message : String(e);
}

export function errnoCode(e: unknown): string | undefined {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' && /^E[A-Z0-9]+$/.test(code) ? code : undefined;
}

/** A file-system error that escaped with its path (Node's own errors carry one): a one-line message. */
export function describeFsError(e: unknown): string | undefined {
  if (e instanceof OutputError) return e.message;
  const x = e as NodeJS.ErrnoException | null;
  if (errnoCode(e) === undefined || typeof x?.path !== 'string') return undefined;
  return `cannot ${x.syscall ?? 'write'} ${x.path}: ${fsCause(e)}`;
}

/**
 * Creates `dir` (and its missing parents) and checks that a file can be created in it. Throws a
 * UsageError for `field` (e.g. `--out`) naming the path and the cause.
 */
export function prepareOutputDir(dir: string, field: string): void {
  const bad = (what: string) => new UsageError(field, what);
  // Walk up to the deepest path that exists; everything below it is to be created.
  const missing: string[] = [];
  let p = resolve(dir);
  for (;;) {
    let isDir: boolean;
    try {
      isDir = statSync(p).isDirectory();
    } catch (e) {
      const code = errnoCode(e);
      // ENOTDIR: some ancestor is a file; keep walking up to name it.
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw bad(`cannot use ${dir} as a directory: ${p}: ${fsCause(e)}`);
      missing.push(p);
      const parent = dirname(p);
      if (parent === p) throw bad(`cannot use ${dir} as a directory: ${p}: ${fsCause(e)}`);
      p = parent;
      continue;
    }
    if (!isDir) throw bad(`cannot use ${dir} as a directory: ${p} is a file`);
    break;
  }
  for (const m of missing.reverse()) {
    try {
      mkdirSync(m);
    } catch (e) {
      throw bad(`cannot create directory ${m}: ${fsCause(e)}`);
    }
  }
  const probe = resolve(dir, `.cvmsim-write-check-${process.pid}`);
  try {
    closeSync(openSync(probe, 'wx'));
    unlinkSync(probe);
  } catch (e) {
    throw bad(`cannot create files in ${dir}: ${fsCause(e)}`);
  }
}

/** Each output file: its directory prepared as above, and the path itself not a directory. */
export function prepareOutputFiles(files: readonly string[], field: string): void {
  for (const f of files) {
    prepareOutputDir(dirname(f), `${field} ${f}`);
    let isDir = false;
    try {
      isDir = statSync(f).isDirectory();
    } catch {
      // absent: it will be created
    }
    if (isDir) throw new UsageError(`${field} ${f}`, `cannot write the file: ${f} is a directory`);
  }
}
