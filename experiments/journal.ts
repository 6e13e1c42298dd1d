import { closeSync, existsSync, fstatSync, fsyncSync, ftruncateSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { writeAll } from './atomic_write.ts';
import { OutputError } from './output_paths.ts';
import { runKey, type RunRecord } from './run_record.ts';

/**
 * The sweep journal: one JSON line per finished run, appended and fsynced as each run ends, in
 * the sweep's output directory. An interrupted sweep re-run with the same command reads it and
 * skips every run already there (a run is identified by experiment, parameters and seed). A torn
 * last line from a crash is ignored; that run simply runs again. Failed runs are journaled too,
 * and are retried on resume (a fix may have landed in between). An append that fails (a full
 * disk) is cut back off the file and throws an OutputError, so the journal never keeps half a line.
 */
export const JOURNAL_FILE = 'journal.jsonl';

export interface JournalEntry {
  key: string;
  record: RunRecord;
  wallMs: number;
}

export class Journal {
  private fd: number | null = null;
  /** The file ends in a torn line (no newline) that our next line must not run on from. */
  private tornTail = false;
  readonly path: string;

  constructor(dir: string) {
    this.path = join(dir, JOURNAL_FILE);
  }

  /** Completed (successful) runs by key; later lines win. `torn` counts lines that did not parse. */
  read(): { done: Map<string, JournalEntry>; torn: number } {
    const done = new Map<string, JournalEntry>();
    let torn = 0;
    if (!existsSync(this.path)) return { done, torn };
    for (const line of readFileSync(this.path, 'utf8').split('\n')) {
      if (line.trim() === '') continue;
      let entry: JournalEntry;
      try {
        entry = JSON.parse(line) as JournalEntry;
      } catch {
        torn++;
        continue;
      }
      if (typeof entry.key !== 'string' || entry.record === undefined || entry.key !== runKey(entry.record)) {
        torn++;
        continue;
      }
      if (entry.record.error === undefined) done.set(entry.key, entry);
      else done.delete(entry.key);
    }
    return { done, torn };
  }

  append(record: RunRecord, wallMs: number): void {
    try {
      if (this.fd === null) {
        // A torn line from an earlier crash has no newline: start ours on a fresh line.
        this.tornTail = existsSync(this.path) && !endsWithNewline(this.path);
        this.fd = openSync(this.path, 'a');
      }
    } catch (e) {
      throw new OutputError(this.path, e);
    }
    const fd = this.fd;
    const line = `${this.tornTail ? '\n' : ''}${JSON.stringify({ key: runKey(record), record, wallMs } satisfies JournalEntry)}\n`;
    const size = fstatSync(fd).size;
    try {
      writeAll(fd, Buffer.from(line, 'utf8'));
      fsyncSync(fd);
      this.tornTail = false;
    } catch (e) {
      try {
        ftruncateSync(fd, size);
      } catch {
        // the write error is the one to report
      }
      throw new OutputError(this.path, e);
    }
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

function endsWithNewline(path: string): boolean {
  const size = statSync(path).size;
  if (size === 0) return true;
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(1);
    readSync(fd, b, 0, 1, size - 1);
    return b[0] === 0x0a;
  } finally {
    closeSync(fd);
  }
}
