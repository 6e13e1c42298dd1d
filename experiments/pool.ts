import { Worker } from 'node:worker_threads';
import { OutputError } from './output_paths.ts';
import type { TaskMessage, TaskResult, WorkerReply } from './task.ts';

/**
 * Runs tasks on `jobs` worker threads, each taking the next task when it finishes one. Results
 * arrive in completion order (callers put them back in plan order). A worker that crashes (not a
 * failed run: those are results) rejects the whole batch. stop() terminates the workers, for an
 * interrupted sweep.
 */
export class Interrupted extends Error {
  override name = 'Interrupted';
  constructor(
    readonly signal: NodeJS.Signals,
    /** The journal that keeps the finished runs, if the command has one. */
    readonly journal: string | null = null,
  ) {
    super(`interrupted by ${signal}`);
  }
}

export class WorkerPool {
  private workers: Worker[] = [];
  private stopped = false;
  private stopHook: ((signal: NodeJS.Signals) => void) | null = null;

  constructor(private readonly jobs: number) {}

  async runAll(tasks: Omit<TaskMessage, 'id'>[], onResult: (index: number, r: TaskResult) => void): Promise<void> {
    if (tasks.length === 0) return;
    const count = Math.max(1, Math.min(this.jobs, tasks.length));
    let next = 0;
    let finished = 0;
    await new Promise<void>((resolve, reject) => {
      let failed = false;
      const fail = (e: Error) => {
        if (failed) return;
        failed = true;
        void this.terminate().then(() => reject(e));
      };
      this.stopHook = (signal) => fail(new Interrupted(signal));
      const feed = (w: Worker) => {
        if (failed || this.stopped) return;
        if (next >= tasks.length) return;
        const id = next++;
        w.postMessage({ ...tasks[id]!, id } satisfies TaskMessage);
      };
      for (let i = 0; i < count; i++) {
        // Workers start without the parent's --import/--require flags: worker_entry.mjs registers tsx itself.
        const w = new Worker(new URL('./worker_entry.mjs', import.meta.url), { execArgv: [], env: process.env, stdout: false, stderr: false });
        this.workers.push(w);
        w.on('message', (reply: WorkerReply) => {
          if (failed) return;
          if (!reply.ok) {
            if (reply.output !== undefined) {
              const o = reply.output;
              fail(new OutputError(o.path, Object.assign(new Error(o.message), { code: o.code })));
              return;
            }
            fail(new Error(`worker failed on ${describeTask(tasks[reply.id]!)}:\n${reply.error}`));
            return;
          }
          try {
            onResult(reply.id, reply.result);
          } catch (e) {
            fail(e as Error);
            return;
          }
          finished++;
          if (finished === tasks.length) {
            void this.terminate().then(resolve, reject);
            return;
          }
          feed(w);
        });
        w.on('error', (e) => fail(e));
        w.on('exit', (code) => {
          if (!failed && finished < tasks.length && !this.stopped) fail(new Error(`worker thread exited with code ${code}`));
        });
        feed(w);
      }
    });
  }

  /** Interrupt: stop handing out tasks and terminate the workers; runAll rejects with Interrupted. */
  stop(signal: NodeJS.Signals = 'SIGINT'): void {
    this.stopped = true;
    this.stopHook?.(signal);
  }

  private async terminate(): Promise<void> {
    const ws = this.workers;
    this.workers = [];
    this.stopped = true;
    await Promise.all(ws.map((w) => w.terminate()));
  }
}

function describeTask(t: Omit<TaskMessage, 'id'>): string {
  return `${t.experiment} seed ${t.seed} ${JSON.stringify(t.params)}`;
}
