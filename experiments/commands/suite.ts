import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { one, parseJobs } from '../args.ts';
import { runBatch } from '../batch.ts';
import { loadCatalog } from '../catalog.ts';
import { err, out, type Command } from '../command.ts';
import { fmt, textTable } from '../format.ts';
import { prepareOutputDir } from '../output_paths.ts';
import { refuseOtherResults, writeOutputs } from '../outputs.ts';
import { checkCombination, defaultParams, sortedParams } from '../params.ts';
import { planRuns } from '../plan.ts';
import { buildResultSet } from '../results.ts';
import { runKey } from '../run_record.ts';
import { SUITE_SWEEPS } from '../suite.ts';
import type { TaskMessage } from '../task.ts';
import { defaultTraceOptions } from '../../traces/options.ts';
import { reportFailures, reportTraces } from './sweep.ts';

export const suite: Command = {
  name: 'suite',
  summary: 'Run the default suite (`npm start`). Every registered experiment at its default parameters with seed 1, plus small sweeps (experiments/suite.ts); writes results, summary and report under results/suite and prints a summary table.',
  positional: { name: '', min: 0, max: 0 },
  options: {
    out: { value: true, arg: 'DIR', help: 'output directory (default results/suite)' },
    jobs: { value: true, arg: 'J', help: 'worker threads (default: the number of cores)' },
  },
  async run(args) {
    const catalog = await loadCatalog();
    const dir = one(args, 'out') ?? join('results', 'suite');
    const jobs = parseJobs(one(args, 'jobs'), availableParallelism());
    // The registry alone: experiments added for tests through the environment stay out of the suite.
    const exps = [...catalog.registered];
    if (exps.length === 0) {
      err('no experiment is registered (experiments/registry.ts): nothing to run');
      return 1;
    }
    // Each default run also writes its trace, to open in the Jaeger UI; the sweep's runs are untraced.
    const traceFile = (name: string) => join(dir, 'traces', `${name}.jaeger.json`);
    prepareOutputDir(dir, '--out');
    refuseOtherResults(dir, '--out', 'cvmsim suite', (c) => !c.sweep && c.results !== null && c.results !== 'unreadable' && c.results.sweep === null);
    prepareOutputDir(join(dir, 'traces'), '--out');
    const tasks: Omit<TaskMessage, 'id'>[] = exps.map((e) => ({
      experiment: e.name, params: defaultParams(e), seed: 1, trace: { ...defaultTraceOptions, files: [traceFile(e.name)] },
    }));
    const seen = new Set(tasks.map((t) => runKey(t)));
    for (const sweep of SUITE_SWEEPS) {
      const sweepExp = catalog.find(sweep.experiment);
      if (sweepExp === undefined || !catalog.registered.includes(sweepExp)) {
        err(`suite: sweep experiment ${sweep.experiment} is not registered; skipping its sweep`);
        continue;
      }
      const spec = {
        experiment: sweepExp.name,
        base: defaultParams(sweepExp),
        grid: sweep.grid,
        seeds: Array.from({ length: sweep.seeds }, (_, i) => i + 1),
      };
      for (const r of planRuns(spec)) {
        checkCombination(sweepExp, r.params, `suite sweep point ${JSON.stringify(r.params)}`);
        const t = { experiment: sweepExp.name, params: sortedParams(r.params), seed: r.seed, trace: null };
        if (!seen.has(runKey(t))) tasks.push(t);
        seen.add(runKey(t));
      }
    }
    err(`suite: ${exps.length} experiment(s) at their defaults and sweeps of ${SUITE_SWEEPS.map((s) => s.experiment).join(', ')}: ${tasks.length} runs on ${Math.min(jobs, tasks.length)} worker thread(s)`);
    const results = await runBatch(tasks, { jobs, label: 'suite' });
    const runs = results.map((r) => r!.record);
    const rs = buildResultSet(runs, exps, null, null);
    const paths = writeOutputs(dir, rs);
    const traceCode = reportTraces(results.flatMap((r) => (r?.trace == null ? [] : [r.trace])));

    out('');
    out(textTable(['experiment', 'seed', 'virtual time', 'wall', 'events', 'key metrics'], exps.map((e, i) => {
      const r = results[i]!;
      // The first metrics the experiment declares are its headline ones.
      const names = Object.keys(e.metrics).filter((k) => Object.hasOwn(r.record.metrics, k)).slice(0, 3);
      const metrics = names.map((k) => `${k}=${fmt(r.record.metrics[k]!)}${e.metrics[k]!.unit === '' ? '' : ` ${e.metrics[k]!.unit}`}`).join(', ');
      return [e.name, '1', `${fmt(r.record.virtualNs / 1e9)} s`, `${fmt(r.wallMs / 1e3)} s`, String(r.record.eventsExecuted), r.record.error === undefined ? metrics : 'FAILED'];
    })));
    out(`\n${runs.length} runs (${runs.length - exps.length} in the sweep); all metrics in ${paths.summary}`);
    out(`wrote ${paths.results}\n      ${paths.csv}\n      ${paths.summary}\n      ${paths.report}`);
    for (const e of exps) out(`      ${traceFile(e.name)}`);
    out('open report.html in a browser; load a .jaeger.json in the Jaeger UI (Search, Upload)');
    return reportFailures(rs) || traceCode;
  },
};
