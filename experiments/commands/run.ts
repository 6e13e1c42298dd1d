import { all, one, type ParsedArgs } from '../args.ts';
import { loadCatalog, type Catalog } from '../catalog.ts';
import { err, out, type Command } from '../command.ts';
import { metricSpec, type Experiment, type Params } from '../experiment.ts';
import { fmt, textTable } from '../format.ts';
import { prepareOutputDir, prepareOutputFiles } from '../output_paths.ts';
import { isSingleRun, refuseOtherResults, writeOutputs } from '../outputs.ts';
import { checkCombination, readConfigFile, resolveParams } from '../params.ts';
import { parseSeed } from '../plan.ts';
import { buildResultSet } from '../results.ts';
import { clocksLine, formatSeconds } from '../runner.ts';
import { watchRun, type RunProgress } from '../run_watch.ts';
import { UsageError } from '../usage_error.ts';
import { runTraced } from '../traced_run.ts';

export const PARAM_OPTIONS = {
  set: { value: true, repeat: true, arg: 'k=v', help: 'override a parameter (see `cvmsim describe <experiment>`)' },
  config: { value: true, arg: 'FILE.json', help: 'a JSON object of parameter values (applied before --set)' },
} as const;

/** The experiment and its parameters from `<experiment> [--config F] [--set k=v ...]`, all checked. */
export async function experimentAndParams(args: ParsedArgs, options: { combination?: boolean } = {}): Promise<{ catalog: Catalog; exp: Experiment; params: Params }> {
  const catalog = await loadCatalog();
  const exp = catalog.get(args.positional[0]!);
  refuseRepeatedSets(all(args, 'set'));
  const configPath = one(args, 'config');
  const params = resolveParams(exp, {
    config: configPath === undefined ? undefined : { path: configPath, values: readConfigFile(configPath) },
    sets: all(args, 'set'),
  });
  if (options.combination !== false) checkCombination(exp, params, '--set');
  return { catalog, exp, params };
}

/** `--set k=1 --set k=2` is refused like a repeated `--seed` (a config file may still be overridden by --set). */
function refuseRepeatedSets(sets: string[]): void {
  const seen = new Map<string, string>();
  for (const s of sets) {
    const eq = s.indexOf('=');
    if (eq <= 0) continue; // splitAssignment names the malformed one
    const k = s.slice(0, eq).trim();
    const v = s.slice(eq + 1);
    const first = seen.get(k);
    if (first !== undefined) throw new UsageError(`--set ${k}`, `expected once, got it twice ('${first}' and '${v}')`);
    seen.set(k, v);
  }
}

/** How often a long `run` reports its progress on stderr (CVMSIM_PROGRESS_EVERY_MS, default 5 s). */
function progressEveryMs(): number {
  const v = Number(process.env.CVMSIM_PROGRESS_EVERY_MS);
  return Number.isFinite(v) && v > 0 ? v : 5000;
}

export const run: Command = {
  name: 'run',
  summary: 'Run one experiment once. Prints its metrics, fingerprint, virtual and wall time, events executed.',
  positional: { name: '<experiment>', min: 1, max: 1 },
  options: {
    seed: { value: true, arg: 'N', help: 'root seed of the run (default 1)' },
    ...PARAM_OPTIONS,
    out: { value: true, arg: 'DIR', help: 'also write results.json, results.csv, summary.md and report.html into DIR' },
    json: { value: false, help: 'print one JSON object (experiment, parameters, seed, metrics, fingerprint) on stdout and nothing else' },
  },
  trace: true,
  details: 'example: cvmsim run accept-boot --set memory_gib=64 --set accept=lazy --seed 2 --trace boot.jaeger.json',
  async run(args) {
    const { exp, params } = await experimentAndParams(args);
    const seed = parseSeed(one(args, 'seed'));
    const outDir = one(args, 'out');
    const json = args.switches.has('json');
    // Every output path is checked before the run: a bad one is found in a second, not after it.
    if (outDir !== undefined) {
      prepareOutputDir(outDir, '--out');
      refuseOtherResults(outDir, '--out', 'cvmsim run', (c) => !c.sweep && c.results !== null && c.results !== 'unreadable' && isSingleRun(c.results));
    }
    if (args.trace !== null) prepareOutputFiles(args.trace.files, '--trace');

    // A long run says how far it has got, on stderr (stdout stays the result, or --json's object).
    const progress = (p: RunProgress) => err(`run: ${formatSeconds(p.virtualNs / 1e9)} simulated so far, ${p.events} events, ${Math.round(p.wallMs / 1000)} s wall`);
    const { record, wallMs, errorStack, trace, sim } = await runTraced(exp, params, seed, args.trace, {
      beforeRun: (s) => watchRun(s, { progress, progressEveryMs: progressEveryMs() }),
    });
    const paths = outDir === undefined ? undefined : writeOutputs(outDir, buildResultSet([record], [exp], { experiment: exp.name, base: params, grid: [], seeds: [seed] }, null));

    // Trace lines go to stderr, so that --json leaves stdout to the one JSON object.
    if (trace !== null) {
      const { formatTraceSummary } = await import('../../traces/index.ts');
      for (const l of formatTraceSummary(trace)) err(l);
    }
    const code = record.error !== undefined ? 1 : (trace?.exitCode ?? 0);
    if (json) {
      out(JSON.stringify({
        experiment: exp.name,
        parameters: params,
        seed,
        metrics: record.metrics,
        fingerprint: record.fingerprint,
        virtual_ns: record.virtualNs,
        events_executed: record.eventsExecuted,
        events_at_equal_times: sim.ties,
        ...(record.error === undefined ? {} : { error: record.error }),
      }));
      return code;
    }
    out(`${exp.name}, seed ${seed}`);
    out(`parameters: ${Object.entries(params).map(([k, v]) => `${k}=${String(v)}`).join(' ')}`);
    if (record.error !== undefined) {
      const frames = (errorStack ?? '').split('\n').filter((l) => l.startsWith('    at ')).slice(0, 8);
      err(`run failed: ${record.error}${frames.length > 0 ? `\n${frames.join('\n')}` : ''}`);
    } else {
      out('');
      // The experiment's own metrics in its order, then the model owners' (host, vm1, ...).
      const own = Object.keys(exp.metrics).filter((k) => Object.hasOwn(record.metrics, k));
      const owners = Object.keys(record.metrics).filter((k) => !Object.hasOwn(exp.metrics, k));
      out(textTable(['metric', 'value', 'unit'], [...own, ...owners].map((k) => [k, fmt(record.metrics[k]!), metricSpec(exp.metrics, k)?.unit ?? ''])));
      out('');
    }
    out(`fingerprint ${record.fingerprint}`);
    // Ties: events at the same virtual time as the one before, run in scheduling order.
    out(`${clocksLine(record.virtualNs, wallMs)}, ${record.eventsExecuted} events executed (${sim.ties} at equal times)`);
    if (paths !== undefined) out(`wrote ${paths.results}, ${paths.csv}, ${paths.summary}, ${paths.report}`);
    return code;
  },
};
