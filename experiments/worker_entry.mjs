// Entry of a worker thread (sweeps, the fuzzer). Workers start without the parent's loader flags,
// so this file is plain JavaScript: it registers tsx's ESM loader in this thread
// (module.register, Node >= 20.6) and then loads the TypeScript worker: workerData.module
// (relative to this file) or, by default, the sweep worker.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(new URL(workerData?.module ?? './worker.ts', import.meta.url).href);
