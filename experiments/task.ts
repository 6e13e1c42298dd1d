import type { TraceOptions, TraceSummary } from '../traces/index.ts';
import type { Params } from './experiment.ts';
import type { Catalog } from './catalog.ts';
import type { RunRecord } from './run_record.ts';
import { runTraced } from './traced_run.ts';

/** One run handed to a worker thread (or run inline): what to run and where its outputs go. */
export interface TaskMessage {
  id: number;
  experiment: string;
  params: Params;
  seed: number;
  /** Trace output of this run (files already named for it), or null. */
  trace: TraceOptions | null;
}

export interface TaskResult {
  record: RunRecord;
  wallMs: number;
  trace: TraceSummary | null;
}

/** An output the worker could not write (OutputError), relayed so that the CLI reports it in one line. */
export interface RelayedOutputError {
  path: string;
  code: string | undefined;
  message: string;
}

export type WorkerReply =
  | { id: number; ok: true; result: TaskResult }
  | { id: number; ok: false; error: string; output?: RelayedOutputError };

export async function executeTask(catalog: Catalog, task: TaskMessage): Promise<TaskResult> {
  const exp = catalog.get(task.experiment);
  const { record, wallMs, trace } = await runTraced(exp, task.params, task.seed, task.trace);
  return { record, wallMs, trace };
}
