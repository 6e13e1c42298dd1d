import { parentPort } from 'node:worker_threads';
import { loadCatalog } from '../catalog.ts';
import { runOnce } from '../runner.ts';
import { watchRun, type RunWatch } from '../run_watch.ts';
import type { FuzzReply, FuzzTask } from './fuzz_task.ts';

/**
 * A fuzzer worker thread: runs one configuration at a time under its wall-time cap and, when
 * asked, runs it a second time to compare fingerprints. It says 'started' once the catalog is
 * loaded, so that the parent's backstop timer counts the run alone.
 */
const port = parentPort;
if (port === null) throw new Error('fuzz_worker.ts must run in a worker thread');

port.on('message', (task: FuzzTask) => {
  void (async () => {
    let reply: FuzzReply;
    try {
      const exp = (await loadCatalog()).get(task.experiment);
      port.postMessage({ id: task.id, started: true } satisfies FuzzReply);
      const once = () => {
        let watch: RunWatch = { capped: false };
        const t = runOnce(exp, task.params, task.seed, { beforeRun: (sim) => (watch = watchRun(sim, { capMs: task.capMs })) });
        return { t, capped: watch.capped };
      };
      const first = once();
      const r = first.t.record;
      const base = { id: task.id, wallMs: first.t.wallMs, events: r.eventsExecuted, virtualNs: r.virtualNs, fingerprint: r.fingerprint };
      if (first.capped) reply = { ...base, outcome: 'capped', error: r.error ?? 'capped' };
      else if (r.error !== undefined) reply = { ...base, outcome: 'failed', error: r.error };
      else if (!task.recheck) reply = { ...base, outcome: 'ok' };
      else {
        // The same configuration again in this thread: module state left over from the first
        // run (or from any run before it) shows up as a different event sequence.
        const second = once();
        const again = second.t.record;
        if (second.capped) reply = { ...base, outcome: 'capped', error: again.error ?? 'capped' };
        else if (again.fingerprint !== r.fingerprint || again.error !== undefined) {
          reply = { ...base, outcome: 'diverged', error: `ran twice: fingerprint ${r.fingerprint} then ${again.fingerprint}${again.error === undefined ? '' : ` (the second run failed: ${again.error.split('\n')[0]})`}` };
        } else reply = { ...base, outcome: 'ok' };
      }
    } catch (e) {
      reply = { id: task.id, outcome: 'crashed', error: e instanceof Error ? (e.stack ?? e.message) : String(e), wallMs: 0, events: 0, virtualNs: 0, fingerprint: '' };
    }
    port.postMessage(reply);
  })();
});
