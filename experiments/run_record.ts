import type { Curve, Params } from './experiment.ts';

/** One finished (or failed) run of one experiment with one parameter set and seed. */
export interface RunRecord {
  experiment: string;
  /** Complete, validated parameters, keys sorted. */
  params: Params;
  seed: number;
  /** Metric values, keys sorted; empty for a failed run. */
  metrics: Record<string, number>;
  /** Curves for charts, keys sorted, each at most MAX_CURVE_POINTS points. */
  curves: Record<string, Curve>;
  /** sim.fingerprint.hex(): equal for equal (experiment, params, seed) on every machine. */
  fingerprint: string;
  /** Virtual time at the end of the run, ns. */
  virtualNs: number;
  eventsExecuted: number;
  /** Why the run failed (SimError with seed, time and process), absent when it succeeded. */
  error?: string;
}

/** Identifies a run inside a sweep: the same key is the same run (journal resume, dedupe). */
export function runKey(r: { experiment: string; params: Params; seed: number }): string {
  const sorted = Object.keys(r.params).sort().map((k) => [k, r.params[k]]);
  return JSON.stringify([r.experiment, sorted, r.seed]);
}
