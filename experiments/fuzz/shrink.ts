import type { Experiment, Params } from '../experiment.ts';
import { defaultParams, sortedParams } from '../params.ts';
import type { NumberSpec } from './generate.ts';

/**
 * Shrinking: from a failing configuration to a smaller one that fails the same way. Smaller
 * means closer to the defaults, so that the reproduction names only the parameters that matter,
 * each as close to its default as still fails, and seed 1 when the seed does not matter. Only
 * candidates the experiment accepts are tried, and a candidate counts only if it fails with the
 * same signature (same first line, numbers aside).
 *
 * Passes, repeated while one of them changes something (within `maxRuns` runs):
 *  1. each parameter back to its default, one at a time;
 *  2. each number still off its default bisected towards it (geometrically across decades), on
 *     the assumption that failing is monotone in it: the result is checked to fail either way;
 *  3. the seed to 1.
 */
export interface Candidate {
  params: Params;
  seed: number;
}

/** Whether the candidate fails the same way as the original (runs it). */
export type StillFails = (c: Candidate) => Promise<boolean>;

export interface ShrinkResult extends Candidate {
  /** Runs spent shrinking. */
  runs: number;
}

export async function shrink(exp: Experiment, start: Candidate, stillFails: StillFails, maxRuns = 150): Promise<ShrinkResult> {
  const defaults = defaultParams(exp);
  let best: Candidate = { params: sortedParams(start.params), seed: start.seed };
  let runs = 0;
  const tried = new Set<string>();
  /** Tries a candidate once; adopts it if it fails the same way. */
  const attempt = async (c: Candidate): Promise<boolean> => {
    const key = JSON.stringify([c.params, c.seed]);
    if (tried.has(key) || runs >= maxRuns) return false;
    tried.add(key);
    if (exp.check?.(c.params) !== undefined) return false;
    runs++;
    if (!(await stillFails(c))) return false;
    best = c;
    return true;
  };
  const withParam = (k: string, v: Params[string]): Candidate => ({ params: sortedParams({ ...best.params, [k]: v }), seed: best.seed });

  for (let changed = true; changed && runs < maxRuns; ) {
    changed = false;
    for (const k of Object.keys(best.params)) {
      if (best.params[k] !== defaults[k] && (await attempt(withParam(k, defaults[k]!)))) changed = true;
    }
    for (const k of Object.keys(best.params)) {
      const spec = exp.params[k];
      if (spec?.type !== 'number' || best.params[k] === defaults[k]) continue;
      if (await bisect(k, spec, defaults[k] as number)) changed = true;
    }
    if (best.seed !== 1 && (await attempt({ params: best.params, seed: 1 }))) changed = true;
  }
  return { ...best, runs };

  /** Moves parameter k from its failing value towards `passing` (its default) while it still fails. */
  async function bisect(k: string, spec: NumberSpec, passing: number): Promise<boolean> {
    let good = passing;
    let bad = best.params[k] as number;
    let moved = false;
    for (let i = 0; i < 40 && runs < maxRuns; i++) {
      const mid = between(spec, good, bad);
      if (mid === undefined) break;
      if (await attempt(withParam(k, mid))) {
        bad = mid;
        moved = true;
      } else {
        good = mid;
      }
    }
    return moved;
  }
}

/**
 * A value strictly between a and b, or undefined when there is none worth trying: integers
 * differ by one, or other numbers agree to 3 significant digits. Across more than a factor of 4
 * (both positive) the midpoint is geometric, so 4 -> 4096 takes ten steps, not a thousand.
 */
export function between(spec: NumberSpec, a: number, b: number): number | undefined {
  const lo = Math.min(a, b);
  const hi = Math.max(a, b);
  let mid = lo > 0 && hi / lo > 4 ? Math.sqrt(lo * hi) : (lo + hi) / 2;
  if (spec.integer === true) {
    if (hi - lo <= 1) return undefined;
    mid = Math.round(mid);
    if (mid <= lo) mid = lo + 1;
    if (mid >= hi) mid = hi - 1;
    return mid;
  }
  mid = Number(mid.toPrecision(3));
  if (mid <= lo || mid >= hi || Number(lo.toPrecision(3)) === Number(hi.toPrecision(3))) return undefined;
  return mid;
}

/** What makes two failures the same: the first line, with numbers and the engine's [seed= t=] tag aside. */
export function failureSignature(error: string): string {
  return error.split('\n')[0]!.replace(/\[seed=[^\]]*\]/g, '').replace(/\d+(\.\d+)?(e[+-]?\d+)?/gi, '#').trim();
}
