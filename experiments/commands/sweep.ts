import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { all, one, parseJobs } from '../args.ts';
import { writeFileAtomic } from '../atomic_write.ts';
import { runBatch } from '../batch.ts';
import { err, out, type Command } from '../command.ts';
import { textTable } from '../format.ts';
import { Journal } from '../journal.ts';
import { prepareOutputDir, prepareOutputFiles } from '../output_paths.ts';
import { MANIFEST_FILE, refuseOtherResults, writeOutputs, type OutputPaths } from '../outputs.ts';
import { checkCombination, jsonErrorWhere } from '../params.ts';
import { parseGrid, parseSeedCount, parseShard, planRuns, shardOf, type PlannedRun } from '../plan.ts';
import type { TraceOptions, TraceSummary } from '../../traces/index.ts';
import { tracingOn } from '../traced_run.ts';
import { buildResultSet, type ResultSet, type Shard, type SweepSpec } from '../results.ts';
import { runKey, type RunRecord } from '../run_record.ts';
import { describeSweep, summarize } from '../tables.ts';
import { UsageError } from '../usage_error.ts';
import { experimentAndParams, PARAM_OPTIONS } from './run.ts';

export const sweep: Command = {
  name: 'sweep',
  summary: 'Run an experiment over a grid of parameters times seeds. Runs on worker threads and writes results, summary and report. An interrupted sweep resumes where it stopped when run again with the same command.',
  positional: { name: '<experiment>', min: 1, max: 1 },
  options: {
    grid: { value: true, repeat: true, arg: 'k=v1,v2', help: 'a parameter and the values to sweep it over' },
    seeds: { value: true, arg: 'N', help: 'run every grid point with seeds 1..N (default 1)' },
    ...PARAM_OPTIONS,
    jobs: { value: true, arg: 'J', help: 'worker threads (default: the number of cores)' },
    shard: { value: true, arg: 'i/n', help: 'run only shard i of n (0-based); `--shard n` takes i from JOB_COMPLETION_INDEX or SLURM_ARRAY_TASK_ID' },
    out: { value: true, arg: 'DIR', help: 'output directory (default results/sweep-<experiment>[-shard-i-of-n])' },
    json: { value: false, help: 'print one JSON object (the sweep, each run with its metrics, the aggregates, the files written) on stdout and nothing else' },
  },
  trace: true,
  details: [
    'example: cvmsim sweep accept-boot --grid memory_gib=4,16,64 --grid accept=eager,lazy --seeds 5',
    'Runs are numbered in a fixed order (first --grid outermost, seeds innermost); shard i takes',
    'every run whose number is i modulo n. Results are the same bytes for any --jobs and any',
    'sharding once merged (`cvmsim merge`). DIR/journal.jsonl records each finished run.',
    'With --trace FILE each run writes its own file, FILE with `.p<grid point>-s<seed>` before its',
    'ending (runs.jaeger.json -> runs.p3-s2.jaeger.json).',
  ].join('\n'),
  async run(args) {
    // The base may be completed by the grid; each grid point is checked as a whole below.
    const { exp, params } = await experimentAndParams(args, { combination: false });
    const setKeys = new Set(all(args, 'set').map((s) => s.slice(0, Math.max(0, s.indexOf('='))).trim()));
    const grid = parseGrid(exp, all(args, 'grid'), setKeys);
    const seeds = parseSeedCount(one(args, 'seeds'));
    const jobs = parseJobs(one(args, 'jobs'), availableParallelism());
    const shard = parseShard(one(args, 'shard'), process.env);
    const spec: SweepSpec = { experiment: exp.name, base: params, grid, seeds };
    const dir = one(args, 'out') ?? join('results', `sweep-${exp.name}${shard === null ? '' : `-shard-${shard.index}-of-${shard.count}`}`);
    for (const r of planRuns(spec).filter((p) => p.seed === seeds[0])) {
      checkCombination(exp, r.params, `--grid point ${grid.map((g) => `${g.param}=${String(r.params[g.param])}`).join(' ') || '(base)'}`);
    }
    const plan = shardOf(planRuns(spec), shard);
    // Every output path is checked before the first run.
    prepareOutputDir(dir, '--out');
    checkManifest(dir, spec, shard);
    if (args.trace !== null) prepareOutputFiles(args.trace.files, '--trace');
    writeFileAtomic(join(dir, MANIFEST_FILE), manifestText(spec, shard));
    const journal = new Journal(dir);
    const { done, torn } = journal.read();
    if (torn > 0) err(`${journal.path}: ignored ${torn} torn line(s) from an interrupted write; those runs run again`);
    const todo = plan.filter((r) => !done.has(runKey({ experiment: exp.name, params: r.params, seed: r.seed })));
    const resumed = plan.length - todo.length;
    err(`sweep ${describeSweep(spec)}${shard === null ? '' : `, shard ${shard.index}/${shard.count}`}: ${plan.length} runs${resumed > 0 ? `, ${resumed} already done (resuming from ${journal.path})` : ''}, ${Math.min(jobs, Math.max(1, todo.length))} worker thread(s)`);

    const trace = args.trace;
    const traceFileForRun = tracingOn(trace) ? (await import('../../traces/index.ts')).traceFileForRun : null;
    const traceFor = (r: PlannedRun): TraceOptions | null => {
      if (!tracingOn(trace) || traceFileForRun === null) return null;
      const tag = `p${Math.floor(r.index / seeds.length)}-s${r.seed}`;
      return { ...trace, files: trace.files.map((f) => traceFileForRun(f, tag)) };
    };
    const results = await runBatch(
      todo.map((r) => ({ experiment: exp.name, params: r.params, seed: r.seed, trace: traceFor(r) })),
      { jobs, label: 'sweep', alreadyDone: resumed, journal },
    );
    const traceCode = reportTraces(results.flatMap((r) => (r?.trace == null ? [] : [r.trace])));
    const fresh = new Map<string, RunRecord>();
    results.forEach((r) => r !== undefined && fresh.set(runKey(r.record), r.record));
    const runs = plan.map((r) => {
      const key = runKey({ experiment: exp.name, params: r.params, seed: r.seed });
      return fresh.get(key) ?? done.get(key)!.record;
    });
    const rs = buildResultSet(runs, [exp], spec, shard);
    const paths = writeOutputs(dir, rs);
    if (args.switches.has('json')) out(JSON.stringify(sweepJson(rs, paths)));
    else {
      printSummary(rs);
      out(`\nwrote ${paths.results}\n      ${paths.csv}\n      ${paths.summary}\n      ${paths.report}`);
    }
    return reportFailures(rs) || traceCode;
  },
};

/** `sweep --json`: results.json without the curves and schemas, plus where the files are. */
export function sweepJson(rs: ResultSet, paths: OutputPaths): object {
  return {
    sweep: rs.sweep,
    shard: rs.shard,
    runs: rs.runs.map((r) => ({
      params: r.params,
      seed: r.seed,
      metrics: r.metrics,
      fingerprint: r.fingerprint,
      virtual_ns: r.virtualNs,
      events_executed: r.eventsExecuted,
      ...(r.error === undefined ? {} : { error: r.error }),
    })),
    aggregates: rs.aggregates,
    files: paths,
  };
}

/** One line for the sweep's traces (not one per run), their warnings, and exit 3 if a required export failed. */
export function reportTraces(summaries: TraceSummary[]): number {
  if (summaries.length === 0) return 0;
  const files = summaries.flatMap((s) => s.files);
  const sent = summaries.filter((s) => s.otlp?.ok === true).length;
  err(`traces: ${summaries.length} run(s) traced, ${summaries.reduce((a, s) => a + s.spans, 0)} spans${files.length > 0 ? `, ${files.length} file(s) such as ${files[0]}` : ''}${sent > 0 ? `, ${sent} sent over OTLP (e.g. ${summaries.find((s) => s.otlp?.ok === true)!.jaegerUrl})` : ''}`);
  for (const w of [...new Set(summaries.flatMap((s) => s.warnings))]) err(w);
  return summaries.some((s) => s.exitCode === 3) ? 3 : 0;
}

function manifestText(spec: SweepSpec, shard: Shard | null): string {
  return `${JSON.stringify({ sweep: spec, shard }, null, 1)}\n`;
}

/** An output directory that already holds a different sweep (or shard) is refused, before anything is written. */
function checkManifest(dir: string, spec: SweepSpec, shard: Shard | null): void {
  const path = join(dir, MANIFEST_FILE);
  // Without a manifest the directory must not hold other results either (a run's, a merge's).
  if (!existsSync(path)) return refuseOtherResults(dir, '--out', 'cvmsim sweep', () => false);
  const existing = readFileSync(path, 'utf8');
  if (existing === manifestText(spec, shard)) return;
  let manifest: unknown;
  try {
    manifest = JSON.parse(existing);
  } catch (e) {
    throw new UsageError('--out', `${path} is damaged (malformed JSON: ${jsonErrorWhere(existing, e as Error)}), so this directory's journal cannot be trusted to resume from; choose another --out or delete ${dir}`);
  }
  const m = manifest as { sweep?: { experiment?: unknown } } | null;
  if (m === null || typeof m !== 'object' || typeof m.sweep?.experiment !== 'string') {
    throw new UsageError('--out', `${path} is not a sweep manifest (expected {"sweep": {...}, "shard": ...}); choose another --out or delete ${dir}`);
  }
  throw new UsageError('--out', `expected a new directory or one holding this same sweep, but ${dir} holds another sweep (${path}); choose another --out or delete it`);
}

/** Metric columns shown on the console; summary.md and report.html have them all. */
const CONSOLE_METRICS = 4;

export function printSummary(rs: ResultSet): void {
  for (const s of summarize(rs)) {
    out(`\n${s.experiment}${s.fixed === '' ? '' : ` (${s.fixed})`}`);
    const metricCols = s.table.header.length - s.firstMetricColumn;
    const keep = (_: string, i: number) => s.table.header[i] !== 'description' && (s.vertical || i < s.firstMetricColumn + CONSOLE_METRICS);
    out(textTable(s.table.header.filter(keep), s.table.rows.map((r) => r.filter(keep))));
    if (!s.vertical && metricCols > CONSOLE_METRICS) out(`(${metricCols - CONSOLE_METRICS} more metrics in summary.md)`);
  }
}

/** Exit 1 if any run failed, naming them on stderr. */
export function reportFailures(rs: ResultSet): number {
  const failed = rs.runs.filter((r) => r.error !== undefined);
  if (failed.length === 0) return 0;
  err(`\n${failed.length} run(s) failed:`);
  for (const r of failed) err(`  ${r.experiment} seed ${r.seed} ${JSON.stringify(r.params)}\n    ${r.error!.split('\n')[0]}`);
  return 1;
}
