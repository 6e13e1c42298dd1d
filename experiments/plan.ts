import type { Experiment, ParamValue, Params } from './experiment.ts';
import { paramSpec, parseParamValue, sortedParams, splitAssignment } from './params.ts';
import type { Shard, SweepSpec } from './results.ts';
import { UsageError } from './usage_error.ts';

/**
 * A sweep's plan: every (grid point, seed) in a fixed order (the first --grid axis outermost,
 * seeds innermost), numbered. Shard i of n takes the runs whose number is i modulo n, so shards
 * are balanced across the grid and their union is the whole plan.
 */
export interface PlannedRun {
  index: number;
  params: Params;
  seed: number;
}

export function planRuns(spec: SweepSpec): PlannedRun[] {
  let points: Params[] = [spec.base];
  for (const axis of spec.grid) {
    points = points.flatMap((p) => axis.values.map((v) => ({ ...p, [axis.param]: v })));
  }
  const runs: PlannedRun[] = [];
  for (const p of points) {
    const params = sortedParams(p);
    for (const seed of spec.seeds) runs.push({ index: runs.length, params, seed });
  }
  return runs;
}

export function shardOf(runs: PlannedRun[], shard: Shard | null): PlannedRun[] {
  return shard === null ? runs : runs.filter((r) => r.index % shard.count === shard.index);
}

/** `--grid k=v1,v2,...` (repeatable): axes in order, values checked against the schema. */
export function parseGrid(exp: Experiment, args: string[], fixedBySet: Set<string>): SweepSpec['grid'] {
  const grid: SweepSpec['grid'] = [];
  for (const a of args) {
    const [k, list] = splitAssignment('--grid', a);
    const field = `--grid ${k}`;
    const spec = paramSpec(exp, k, field);
    if (grid.some((g) => g.param === k)) throw new UsageError(field, `expected each parameter on one --grid, got '${k}' twice`);
    if (fixedBySet.has(k)) throw new UsageError(field, `'${k}' is also fixed by --set; give it on one of them`);
    if (spec.type === 'enum' && spec.presets !== undefined) {
      throw new UsageError(field, `'${k}' is a preset (it sets the defaults of ${[...new Set(Object.values(spec.presets).flatMap((p) => Object.keys(p)))].join(', ')}); a sweep cannot vary it: run one sweep per value with --set ${k}=<value>, or put those parameters on the grid`);
    }
    const raws = list.split(',').map((s) => s.trim());
    if (raws.some((r) => r === '')) throw new UsageError(field, `expected a comma-separated list of values, got '${list}'`);
    const values: ParamValue[] = raws.map((r) => parseParamValue(field, spec, r));
    const seen = new Set<ParamValue>();
    for (const v of values) {
      if (seen.has(v)) throw new UsageError(field, `expected distinct values, got ${String(v)} twice`);
      seen.add(v);
    }
    grid.push({ param: k, values });
  }
  return grid;
}

/** `--seeds N`: seeds 1..N. */
export function parseSeedCount(text: string | undefined): number[] {
  if (text === undefined) return [1];
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(n >= 1 && n <= 100_000)) throw new UsageError('--seeds', `expected a number of seeds in [1, 100000], got '${text}'`);
  return Array.from({ length: n }, (_, i) => i + 1);
}

/** `--seed N`. */
export function parseSeed(text: string | undefined, field = '--seed'): number {
  if (text === undefined) return 1;
  const n = /^-?\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n)) throw new UsageError(field, `expected an integer seed, got '${text}'`);
  return n;
}

/**
 * `--shard i/n`, or `--shard n` with i from the batch system: a Kubernetes Indexed Job's
 * JOB_COMPLETION_INDEX (0-based), else a Slurm array's SLURM_ARRAY_TASK_ID (made 0-based with
 * SLURM_ARRAY_TASK_MIN, so `--array=1-4` works as well as `--array=0-3`).
 */
export function parseShard(text: string | undefined, env: NodeJS.ProcessEnv): Shard | null {
  if (text === undefined) return null;
  const field = '--shard';
  const full = /^(\d+)\/(\d+)$/.exec(text);
  const countOnly = /^\/?(\d+)$/.exec(text);
  let index: number;
  let count: number;
  if (full !== null) {
    index = Number(full[1]);
    count = Number(full[2]);
  } else if (countOnly !== null) {
    count = Number(countOnly[1]);
    const k8s = env.JOB_COMPLETION_INDEX;
    const slurm = env.SLURM_ARRAY_TASK_ID;
    if (k8s !== undefined && k8s !== '') {
      if (!/^\d+$/.test(k8s)) throw new UsageError(field, `expected JOB_COMPLETION_INDEX to be an index, got '${k8s}'`);
      index = Number(k8s);
    } else if (slurm !== undefined && slurm !== '') {
      const min = env.SLURM_ARRAY_TASK_MIN ?? '0';
      if (!/^\d+$/.test(slurm) || !/^\d+$/.test(min)) throw new UsageError(field, `expected SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_MIN to be integers, got '${slurm}' and '${min}'`);
      index = Number(slurm) - Number(min);
    } else {
      throw new UsageError(field, `expected i/n, or n with JOB_COMPLETION_INDEX (Kubernetes Indexed Job) or SLURM_ARRAY_TASK_ID set; got '${text}' and neither variable`);
    }
  } else {
    throw new UsageError(field, `expected i/n (shard i of n, 0 <= i < n) or n, got '${text}'`);
  }
  if (!(count >= 1)) throw new UsageError(field, `expected at least 1 shard, got ${count}`);
  if (!(index >= 0 && index < count)) throw new UsageError(field, `expected a shard index in [0, ${count - 1}], got ${index}`);
  return { index, count };
}
