import { availableParallelism } from 'node:os';
import { one, parseJobs } from '../args.ts';
import { baselineNames, checkBaselinesDir, baselinePath, readBaseline, withinTolerance, writeBaseline, type BaselineCase, type BaselineFile } from '../baselines.ts';
import { runBatch } from '../batch.ts';
import { loadCatalog } from '../catalog.ts';
import { err, out, type Command } from '../command.ts';
import { metricSpec, type Experiment, type Params } from '../experiment.ts';
import { fmt, textTable } from '../format.ts';
import { defaultParams } from '../params.ts';
import { prepareOutputDir } from '../output_paths.ts';
import { BASELINES_DIR } from '../paths.ts';
import { UsageError } from '../usage_error.ts';
import { toleranceText } from './describe.ts';

export const regress: Command = {
  name: 'regress',
  summary: 'Check timing against the baselines. Re-runs the cases of experiments/baselines/<experiment>.json and compares every metric with its baseline within the tolerance its MetricSpec declares; prints each breach and exits 1. With --update, rewrites the baselines on purpose.',
  positional: { name: '[experiment...]', min: 0, max: Infinity },
  options: {
    update: { value: false, help: 'rewrite the baselines with the current metrics (an experiment without one gets its default case, seed 1)' },
    baselines: { value: true, arg: 'DIR', help: 'baseline directory (default experiments/baselines)' },
    jobs: { value: true, arg: 'J', help: 'worker threads (default: the number of cores)' },
  },
  details: 'With no experiment named: every baseline file, and every registered experiment (a registered\nexperiment without a baseline is a failure). Add a case by appending {"params": {...}, "seed": N}\nto a baseline file by hand, then run `cvmsim regress --update <experiment>`.',
  async run(args) {
    const catalog = await loadCatalog();
    const dir = one(args, 'baselines') ?? BASELINES_DIR;
    const update = args.switches.has('update');
    checkBaselinesDir(dir);
    const jobs = parseJobs(one(args, 'jobs'), availableParallelism());
    const names = args.positional.length > 0
      ? args.positional
      : [...new Set([...catalog.registered.map((e) => e.name), ...baselineNames(dir)])];
    const exps = names.map((n) => catalog.get(n, 'experiment'));
    // --update writes there: check the directory before running anything.
    if (update) prepareOutputDir(dir, '--baselines');

    // Read every baseline before running anything: a malformed one is bad input (exit 2).
    const files = new Map<string, BaselineFile | undefined>(exps.map((e) => [e.name, readBaseline(dir, e)]));
    const missing = exps.filter((e) => files.get(e.name) === undefined);
    if (!update && missing.length > 0) {
      for (const e of missing) err(`${e.name}: no baseline (${baselinePath(dir, e.name)}); create it with \`cvmsim regress --update ${e.name}\``);
    }
    const cases: { exp: Experiment; c: { params: Params; seed: number }; baseline: BaselineCase | undefined }[] = [];
    for (const e of exps) {
      const f = files.get(e.name);
      // An empty case list checks nothing: bad input, unless --update is about to fill it.
      if (f !== undefined && f.cases.length === 0 && !update) {
        throw new UsageError(baselinePath(dir, e.name), `expected at least one case, got "cases": [] (it would check nothing); add {"params": {...}, "seed": N} or run \`cvmsim regress --update ${e.name}\``);
      }
      if (f !== undefined && f.cases.length > 0) for (const c of f.cases) cases.push({ exp: e, c, baseline: c });
      else if (update) cases.push({ exp: e, c: { params: defaultParams(e), seed: 1 }, baseline: undefined });
    }

    const results = await runBatch(cases.map(({ exp, c }) => ({ experiment: exp.name, params: c.params, seed: c.seed, trace: null })), { jobs, label: 'regress' });
    const breaches: string[][] = [];
    const notes: string[] = [];
    let failedRuns = 0;
    let compared = 0;
    cases.forEach(({ exp, c, baseline }, i) => {
      const rec = results[i]!.record;
      const label = caseLabel(exp, c);
      if (rec.error !== undefined) {
        failedRuns++;
        err(`${exp.name} ${label}: run failed: ${rec.error}`);
        return;
      }
      if (baseline === undefined) return;
      if (baseline.fingerprint !== '' && baseline.fingerprint !== rec.fingerprint) notes.push(`${exp.name} ${label}: fingerprint ${baseline.fingerprint} -> ${rec.fingerprint} (the event sequence changed)`);
      // Every metric the run reports must be in the baseline, and every baseline metric must
      // still be reported: a metric deleted from the file would otherwise stop being checked
      // without anyone noticing. (What a run reports is the experiment's own metrics and its
      // model owners' families, e.g. vm1.kvm.exits.*, which depend on the configuration.)
      for (const m of [...new Set([...Object.keys(rec.metrics), ...Object.keys(baseline.metrics)])].sort()) {
        compared++;
        const spec = metricSpec(exp.metrics, m);
        const base = baseline.metrics[m];
        const now = rec.metrics[m];
        if (spec === undefined) breaches.push([exp.name, label, m, fmt(base!), 'missing', '', 'metric no longer declared']);
        else if (base === undefined) breaches.push([exp.name, label, m, 'missing', now === undefined ? 'missing' : fmt(now), '', `not in the baseline${update ? '' : ' (regress --update adds it)'}`]);
        else if (now === undefined) breaches.push([exp.name, label, m, fmt(base), 'missing', '', toleranceText(spec.tolerance)]);
        else if (!withinTolerance(spec.tolerance, base, now)) breaches.push([exp.name, label, m, fmt(base), fmt(now), difference(base, now), toleranceText(spec.tolerance)]);
      }
    });

    for (const n of notes) err(`note: ${n}`);
    const header = ['experiment', 'case', 'metric', 'baseline', 'now', 'difference', 'tolerance'];
    if (update) {
      if (failedRuns > 0) {
        err(`not updating: ${failedRuns} run(s) failed`);
        return 1;
      }
      for (const e of exps) {
        const file: BaselineFile = { experiment: e.name, cases: [] };
        cases.forEach(({ exp, c }, i) => {
          if (exp !== e) return;
          const rec = results[i]!.record;
          file.cases.push({ params: rec.params, seed: c.seed, fingerprint: rec.fingerprint, metrics: rec.metrics });
        });
        out(`updated ${writeBaseline(dir, file)} (${file.cases.length} case(s))`);
      }
      if (breaches.length > 0) out(`\nchanged beyond tolerance (now the baseline):\n${textTable(header, breaches)}`);
      return 0;
    }
    if (breaches.length > 0) {
      out(`regress: ${breaches.length} metric(s) outside tolerance\n\n`);
      out(textTable(header, breaches));
    }
    const ok = breaches.length === 0 && failedRuns === 0 && missing.length === 0;
    out(`${ok ? 'regress: ok' : 'regress: FAILED'}: ${cases.length} case(s) of ${exps.length} experiment(s), ${compared} metric(s) compared, ${breaches.length} outside tolerance${failedRuns > 0 ? `, ${failedRuns} run(s) failed` : ''}${missing.length > 0 ? `, ${missing.length} without baseline` : ''}`);
    return ok ? 0 : 1;
  },
};

/** The case's seed and the parameters that differ from the defaults. */
function caseLabel(exp: Experiment, c: { params: Params; seed: number }): string {
  const d = defaultParams(exp);
  const diff = Object.keys(exp.params).filter((k) => c.params[k] !== d[k]).map((k) => `${k}=${String(c.params[k])}`);
  return `seed ${c.seed}${diff.length > 0 ? ` ${diff.join(' ')}` : ''}`;
}

function difference(base: number, now: number): string {
  const d = now - base;
  const sign = d >= 0 ? '+' : '';
  if (base === 0) return `${sign}${fmt(d)}`;
  return `${sign}${fmt(d)} (${sign}${fmt((100 * d) / Math.abs(base))}%)`;
}
