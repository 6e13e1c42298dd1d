import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from './atomic_write.ts';
import type { Experiment, Params, Tolerance } from './experiment.ts';
import { checkCombination, checkParams, jsonErrorWhere } from './params.ts';
import { UsageError } from './usage_error.ts';

/**
 * Timing baselines: experiments/baselines/<experiment>.json holds chosen cases (parameters and
 * seed) and the metrics they gave when the baseline was last updated on purpose. A case's params
 * may be partial when written by hand (the rest are defaults); `regress --update` writes them out
 * in full with the current metrics.
 */
export interface BaselineCase {
  params: Params;
  seed: number;
  fingerprint: string;
  metrics: Record<string, number>;
}

export interface BaselineFile {
  experiment: string;
  cases: BaselineCase[];
}

export function baselinePath(dir: string, experiment: string): string {
  return join(dir, `${experiment}.json`);
}

/** Experiment names with a baseline file in dir, sorted. */
export function baselineNames(dir: string): string[] {
  checkBaselinesDir(dir);
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5)).sort();
}

/** A --baselines path that exists must be a directory (a missing one holds no baselines). */
export function checkBaselinesDir(dir: string): void {
  if (existsSync(dir) && !statSync(dir).isDirectory()) throw new UsageError('--baselines', `expected a directory of baseline files, got ${dir}, a file`);
}

/** Reads and checks a baseline file; undefined if there is none. */
export function readBaseline(dir: string, exp: Experiment): BaselineFile | undefined {
  const path = baselinePath(dir, exp.name);
  if (!existsSync(path)) return undefined;
  let v: unknown;
  const text = readFileSync(path, 'utf8');
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new UsageError(path, `expected a JSON baseline file, got malformed JSON: ${jsonErrorWhere(text, e as Error)}`);
  }
  const f = v as Partial<BaselineFile>;
  if (f === null || typeof f !== 'object' || f.experiment !== exp.name || !Array.isArray(f.cases)) {
    throw new UsageError(path, `expected {"experiment": "${exp.name}", "cases": [...]}`);
  }
  const cases = f.cases.map((c, i) => {
    const where = `${path} cases[${i}]`;
    if (c === null || typeof c !== 'object') throw new UsageError(where, 'expected an object with params and seed');
    if (!Number.isSafeInteger(c.seed)) throw new UsageError(`${where}.seed`, `expected an integer, got ${JSON.stringify(c.seed)}`);
    const metrics = c.metrics ?? {};
    for (const [k, m] of Object.entries(metrics)) {
      if (typeof m !== 'number' || !Number.isFinite(m)) throw new UsageError(`${where}.metrics.${k}`, `expected a finite number, got ${JSON.stringify(m)}`);
    }
    const params = checkParams(exp, (c.params ?? {}) as Record<string, unknown>, `${where}.params`);
    checkCombination(exp, params, `${where}.params`);
    return {
      params,
      seed: c.seed,
      fingerprint: typeof c.fingerprint === 'string' ? c.fingerprint : '',
      metrics,
    };
  });
  return { experiment: exp.name, cases };
}

export function writeBaseline(dir: string, file: BaselineFile): string {
  const path = baselinePath(dir, file.experiment);
  writeFileAtomic(path, `${JSON.stringify(file, null, 2)}\n`);
  return path;
}

/** Whether now is within tolerance of baseline. */
export function withinTolerance(t: Tolerance, baseline: number, now: number): boolean {
  switch (t.kind) {
    case 'exact':
      return now === baseline;
    case 'relative':
      return Math.abs(now - baseline) <= t.value * Math.abs(baseline);
    case 'absolute':
      return Math.abs(now - baseline) <= t.value;
  }
}
