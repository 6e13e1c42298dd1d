import { Worker } from 'node:worker_threads';
import type { FuzzOutcome, FuzzReply, FuzzTask } from './fuzz_task.ts';

/**
 * The parent's side of one fuzzer worker thread. A run is stopped by its own cap from inside the
 * event loop (run_watch.ts); a run that stops producing events (a loop inside one step) cannot
 * be, so a backstop terminates the thread once the run has had its cap and as long again (at
 * least BACKSTOP_MIN_MS) without answering. A terminated or crashed thread is replaced on the
 * next run.
 */
const BACKSTOP_MIN_MS = 2000;

export class FuzzWorkerThread {
  private worker: Worker | null = null;
  private nextId = 0;

  /** Runs one configuration; never rejects (a crash is an outcome). */
  run(task: Omit<FuzzTask, 'id'>): Promise<FuzzOutcome> {
    const w = this.ensure();
    const id = this.nextId++;
    return new Promise<FuzzOutcome>((resolve) => {
      let backstop: NodeJS.Timeout | null = null;
      const done = (o: FuzzOutcome) => {
        if (backstop !== null) clearTimeout(backstop);
        w.off('message', onMessage);
        w.off('error', onError);
        w.off('exit', onExit);
        resolve(o);
      };
      const lost = (error: string, terminated: boolean): FuzzOutcome => ({
        outcome: terminated ? 'capped' : 'crashed', error, terminated, wallMs: 0, events: 0, virtualNs: 0, fingerprint: '',
      });
      const onMessage = (reply: FuzzReply) => {
        if (reply.id !== id) return;
        if (reply.started === true) {
          const ms = task.capMs + Math.max(BACKSTOP_MIN_MS, task.capMs);
          backstop = setTimeout(() => {
            this.discard();
            done({ ...lost(`no answer ${ms / 1000} s after the run started (no event in the last part of it): the worker thread was terminated`, true), wallMs: ms });
          }, ms);
          return;
        }
        const { id: _id, started: _started, ...outcome } = reply;
        done(outcome);
      };
      const onError = (e: Error) => {
        this.discard();
        done(lost(`the worker thread failed: ${e.message}`, false));
      };
      const onExit = (code: number) => {
        this.worker = null;
        done(lost(`the worker thread exited with code ${code}`, false));
      };
      w.on('message', onMessage);
      w.on('error', onError);
      w.on('exit', onExit);
      w.postMessage({ ...task, id } satisfies FuzzTask);
    });
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = null;
    if (w !== null) await w.terminate();
  }

  private ensure(): Worker {
    if (this.worker === null) {
      this.worker = new Worker(new URL('../worker_entry.mjs', import.meta.url), {
        execArgv: [],
        env: process.env,
        stdout: false,
        stderr: false,
        workerData: { module: './fuzz/fuzz_worker.ts' },
      });
    }
    return this.worker;
  }

  private discard(): void {
    const w = this.worker;
    this.worker = null;
    if (w !== null) void w.terminate();
  }
}
