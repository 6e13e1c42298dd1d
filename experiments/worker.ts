import { parentPort } from 'node:worker_threads';
import { loadCatalog } from './catalog.ts';
import { errnoCode, OutputError } from './output_paths.ts';
import { executeTask, type TaskMessage, type WorkerReply } from './task.ts';

/** A sweep worker thread: runs one task at a time for the pool (pool.ts) and replies. */
const port = parentPort;
if (port === null) throw new Error('worker.ts must run in a worker thread');

port.on('message', (task: TaskMessage) => {
  void (async () => {
    let reply: WorkerReply;
    try {
      const catalog = await loadCatalog();
      reply = { id: task.id, ok: true, result: await executeTask(catalog, task) };
    } catch (e) {
      reply = { id: task.id, ok: false, error: e instanceof Error ? (e.stack ?? e.message) : String(e) };
      if (e instanceof OutputError) {
        const cause = e.cause as NodeJS.ErrnoException | undefined;
        reply.output = { path: e.path, code: errnoCode(cause), message: cause?.message ?? e.message };
      }
    }
    port.postMessage(reply);
  })();
});
