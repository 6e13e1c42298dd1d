import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { OutputError } from './output_paths.ts';

/**
 * Writes a file so that readers see either the old content or the whole new one: write every
 * byte to a temporary file beside it, fsync, rename over the target, fsync the directory. On any
 * error (a full disk, a read-only file system) the temporary file is removed, the target is left
 * as it was, and an OutputError naming the target and the cause is thrown.
 */
export function writeFileAtomic(path: string, data: string): void {
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}`);
  let fd: number | null = null;
  try {
    fd = openSync(tmp, 'w');
    writeAll(fd, Buffer.from(data, 'utf8'));
    fsyncSync(fd);
    closeSync(fd);
    fd = null;
    renameSync(tmp, path);
  } catch (e) {
    if (fd !== null) closeQuietly(fd);
    try {
      unlinkSync(tmp);
    } catch {
      // never created, or already renamed
    }
    throw new OutputError(path, e);
  }
  syncDirectory(dirname(path));
}

/**
 * writeSync until every byte is written: one call may write fewer bytes than asked (a nearly
 * full disk, a signal), and the next one then reports the error.
 */
export function writeAll(fd: number, bytes: Uint8Array): void {
  let offset = 0;
  while (offset < bytes.length) {
    const n = writeSync(fd, bytes, offset, bytes.length - offset);
    if (n <= 0) throw Object.assign(new Error(`write returned ${n} with ${bytes.length - offset} bytes left`), { code: 'EIO' });
    offset += n;
  }
}

/** Makes the rename itself durable. Some file systems cannot fsync a directory; that is not an error. */
function syncDirectory(dir: string): void {
  let fd: number | null = null;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // EISDIR/EINVAL/EPERM on file systems without directory fsync
  } finally {
    if (fd !== null) closeQuietly(fd);
  }
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already failing; the first error is the one to report
  }
}
