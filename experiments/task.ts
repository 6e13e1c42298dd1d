import type { Params } from './experiment.ts';
import type { Catalog } from './catalog.ts';
import type { RunRecord } from './run_record.ts';
import { runOnce } from './runner.ts';

/** One run handed to a worker thread (or run inline): what to run and where its outputs go. */
export interface TaskMessage {
  id: number;
  experiment: string;
  params: Params;
  seed: number;
}

export interface TaskResult {
  record: RunRecord;
  wallMs: number;
}

export type WorkerReply = { id: number; ok: true; result: TaskResult } | { id: number; ok: false; error: string };

export async function executeTask(catalog: Catalog, task: TaskMessage): Promise<TaskResult> {
  const exp = catalog.get(task.experiment);
  const { record, wallMs } = runOnce(exp, task.params, task.seed);
  return { record, wallMs };
}
