import type { Journal } from './journal.ts';
import { Interrupted, WorkerPool } from './pool.ts';
import { Progress } from './progress.ts';
import type { TaskMessage, TaskResult } from './task.ts';

/**
 * Runs a batch of tasks on worker threads with a progress display, journaling each finished run
 * (when a journal is given) the moment it arrives. SIGINT, SIGTERM or SIGHUP stops the batch:
 * the workers are terminated, what finished is in the journal, and the promise rejects with
 * Interrupted (naming the signal and the journal). Results come back indexed like `tasks`.
 */
/** The signals that stop a batch (Ctrl-C, kill, a closed terminal or a batch system's hangup). */
export const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

export interface BatchOptions {
  jobs: number;
  label: string;
  /** Runs done before this batch (a resumed sweep), for the progress display. */
  alreadyDone?: number;
  journal?: Journal;
}

export async function runBatch(tasks: Omit<TaskMessage, 'id'>[], options: BatchOptions): Promise<(TaskResult | undefined)[]> {
  const results: (TaskResult | undefined)[] = new Array(tasks.length).fill(undefined);
  if (tasks.length === 0) return results;
  const already = options.alreadyDone ?? 0;
  const pool = new WorkerPool(options.jobs);
  const progress = new Progress(options.label, already + tasks.length, already);
  const onSignal = (signal: NodeJS.Signals) => pool.stop(signal);
  for (const s of STOP_SIGNALS) process.on(s, onSignal);
  try {
    await pool.runAll(tasks, (i, r) => {
      options.journal?.append(r.record, r.wallMs);
      results[i] = r;
      progress.tick();
    });
  } catch (e) {
    if (e instanceof Interrupted) throw new Interrupted(e.signal, options.journal?.path ?? null);
    throw e;
  } finally {
    progress.finish();
    for (const s of STOP_SIGNALS) process.off(s, onSignal);
    options.journal?.close();
  }
  return results;
}
