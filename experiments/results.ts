import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Experiment, MetricSpec, ParamSpec, ParamValue, Params } from './experiment.ts';
import { aggregate, type MetricAggregate } from './aggregate.ts';
import { runKey, type RunRecord } from './run_record.ts';
import { jsonErrorWhere } from './params.ts';
import { UsageError } from './usage_error.ts';

/**
 * A result set: the runs of a `run`, a sweep (or one shard of it), a merge or the suite, in a
 * fixed order, with aggregates over seeds and the schema of every experiment involved (so a
 * report can be drawn from the file alone). Nothing in it depends on the machine, the number of
 * worker threads or the sharding: the same sweep gives the same bytes.
 */
export const RESULTS_FORMAT = 'cvmsim-results/1';

/** What a sweep is: an experiment, fixed parameters, a grid, seeds. Shards of it share this. */
export interface SweepSpec {
  experiment: string;
  /** Parameters every run shares (defaults < --config < --set), keys sorted. */
  base: Params;
  /** Grid axes in command-line order; values in the order given. */
  grid: { param: string; values: ParamValue[] }[];
  seeds: number[];
}

export interface Shard {
  index: number;
  count: number;
}

export interface ExperimentInfo {
  question: string;
  params: Record<string, ParamSpec>;
  metrics: Record<string, MetricSpec>;
}

export interface Aggregate {
  experiment: string;
  params: Params;
  seeds: number[];
  failed: number;
  metrics: Record<string, MetricAggregate>;
}

export interface ResultSet {
  format: typeof RESULTS_FORMAT;
  /** The sweep these runs belong to; null for the suite (several experiments). */
  sweep: SweepSpec | null;
  /** Which shard of the sweep; null when the set is complete. */
  shard: Shard | null;
  experiments: Record<string, ExperimentInfo>;
  runs: RunRecord[];
  aggregates: Aggregate[];
}

export function experimentInfo(e: Experiment): ExperimentInfo {
  return { question: e.question, params: e.params, metrics: e.metrics };
}

/**
 * Builds a result set from runs already in their fixed order. Aggregates group runs by
 * (experiment, params) in order of first appearance; failed runs are counted, not averaged.
 */
export function buildResultSet(
  runs: RunRecord[],
  experiments: Experiment[] | Record<string, ExperimentInfo>,
  sweep: SweepSpec | null,
  shard: Shard | null,
): ResultSet {
  const infos: Record<string, ExperimentInfo> = {};
  const byName = Array.isArray(experiments)
    ? Object.fromEntries(experiments.map((e) => [e.name, experimentInfo(e)]))
    : experiments;
  for (const name of [...new Set(runs.map((r) => r.experiment))].sort()) {
    const info = byName[name];
    if (info === undefined) throw new Error(`no schema for experiment ${name}`);
    infos[name] = info;
  }
  return { format: RESULTS_FORMAT, sweep, shard, experiments: infos, runs, aggregates: aggregateRuns(runs) };
}

export function aggregateRuns(runs: RunRecord[]): Aggregate[] {
  const groups = new Map<string, RunRecord[]>();
  for (const r of runs) {
    const key = runKey({ experiment: r.experiment, params: r.params, seed: 0 });
    let g = groups.get(key);
    if (g === undefined) groups.set(key, (g = []));
    g.push(r);
  }
  return [...groups.values()].map((g) => {
    const ok = g.filter((r) => r.error === undefined);
    const names = [...new Set(ok.flatMap((r) => Object.keys(r.metrics)))].sort();
    const metrics: Record<string, MetricAggregate> = {};
    for (const m of names) {
      const values = ok.filter((r) => Object.hasOwn(r.metrics, m)).map((r) => r.metrics[m]!);
      metrics[m] = aggregate(values);
    }
    return { experiment: g[0]!.experiment, params: g[0]!.params, seeds: g.map((r) => r.seed), failed: g.length - ok.length, metrics };
  });
}

export const RESULTS_FILE = 'results.json';

/** Reads DIR/results.json, checking its format. */
export function readResultSet(dir: string, field: string): ResultSet {
  const path = join(dir, RESULTS_FILE);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UsageError(field, code === 'ENOENT'
      ? `expected a results directory with ${RESULTS_FILE}, but ${path} does not exist (an unfinished sweep has only its journal: re-run the sweep to resume it)`
      : `cannot read ${path} (${code ?? String(e)})`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new UsageError(field, `${path} is not valid JSON: ${jsonErrorWhere(text, e as Error)}`);
  }
  const v = value as Partial<ResultSet>;
  if (v === null || typeof v !== 'object' || v.format !== RESULTS_FORMAT || !Array.isArray(v.runs) || !Array.isArray(v.aggregates)) {
    throw new UsageError(field, `${path} is not a cvmsim result set (expected "format": "${RESULTS_FORMAT}")`);
  }
  const problem = resultSetProblem(v as ResultSet);
  if (problem !== undefined) throw new UsageError(field, `${path} is damaged: ${problem}`);
  return v as ResultSet;
}

const isObject = (x: unknown): x is Record<string, unknown> => x !== null && typeof x === 'object' && !Array.isArray(x);

/** The first thing in a parsed results.json that a report could not be drawn from, or undefined. */
function resultSetProblem(rs: ResultSet): string | undefined {
  if (!isObject(rs.experiments)) return `expected "experiments" to be an object of experiment schemas, got ${JSON.stringify(rs.experiments)}`;
  for (const [name, info] of Object.entries(rs.experiments)) {
    if (!isObject(info) || !isObject(info.params) || !isObject(info.metrics)) return `expected experiments.${name} to have "params" and "metrics" objects`;
  }
  if (rs.sweep !== null && rs.sweep !== undefined && (!isObject(rs.sweep) || !Array.isArray(rs.sweep.grid) || !Array.isArray(rs.sweep.seeds))) {
    return 'expected "sweep" to be null or {experiment, base, grid, seeds}';
  }
  for (const [i, r] of rs.runs.entries()) {
    if (!isObject(r) || typeof r.experiment !== 'string' || !isObject(r.params) || typeof r.seed !== 'number' || !isObject(r.metrics) || !isObject(r.curves ?? {})) {
      return `expected runs[${i}] to have experiment, params, seed and metrics`;
    }
    if (!Object.hasOwn(rs.experiments, r.experiment)) return `runs[${i}] is of experiment '${r.experiment}', which "experiments" does not describe`;
  }
  for (const [i, a] of rs.aggregates.entries()) {
    if (!isObject(a) || typeof a.experiment !== 'string' || !isObject(a.params) || !Array.isArray(a.seeds) || !isObject(a.metrics)) {
      return `expected aggregates[${i}] to have experiment, params, seeds and metrics`;
    }
  }
  return undefined;
}
