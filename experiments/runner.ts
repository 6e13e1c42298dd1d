import { performance } from 'node:perf_hooks';
import { Sim } from '../sim/index.ts';
import { metricSpec, type Curve, type Experiment, type ExperimentResult, type Params } from './experiment.ts';
import { lockWaitCurves } from './lock_waits.ts';
import type { RunRecord } from './run_record.ts';

/**
 * Runs one experiment once: a fresh Sim from the seed, an optional observer (tracing) attached
 * before the model is built, experiment.run(params, sim), then the metrics, curves, fingerprint,
 * virtual time and events. Wall time is measured here and only here (the runner shows both
 * clocks), and it stays out of the RunRecord so results are the same bytes on every machine.
 */

/** Curves longer than this are thinned (evenly, keeping both ends) before they are stored. */
export const MAX_CURVE_POINTS = 1000;

export interface RunHooks {
  /** Called with the Sim before experiment.run, e.g. to start tracing. */
  beforeRun?(sim: Sim): void;
}

export interface TimedRun {
  record: RunRecord;
  wallMs: number;
  sim: Sim;
  errorStack?: string | undefined;
  /** What the run threw, for the trace (an `exception` event on the failing span). */
  thrown?: unknown;
}

export function runOnce(exp: Experiment, params: Params, seed: number, hooks: RunHooks = {}): TimedRun {
  const sim = new Sim({ seed });
  const started = performance.now();
  let result: ExperimentResult | undefined;
  let error: string | undefined;
  let errorStack: string | undefined;
  let thrown: unknown;
  try {
    hooks.beforeRun?.(sim);
    result = exp.run(params, sim);
    checkResult(exp, result);
  } catch (e) {
    thrown = e;
    // The message (a SimError carries seed, virtual time and process) goes into the results; the
    // stack, which names files on this machine, only to the console.
    error = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    errorStack = e instanceof Error ? e.stack : undefined;
  }
  const wallMs = performance.now() - started;
  const record: RunRecord = {
    experiment: exp.name,
    params,
    seed,
    metrics: error === undefined ? sortedRecord(result!.metrics) : {},
    // The experiment's own curves, plus the lock wait distributions the engine kept.
    curves: error === undefined ? thinCurves({ ...lockWaitCurves(sim), ...(result!.curves ?? {}) }) : {},
    fingerprint: sim.fingerprint.hex(),
    virtualNs: sim.now,
    eventsExecuted: sim.eventsExecuted,
  };
  if (error !== undefined) record.error = firstLines(error, 40);
  return { record, wallMs, sim, errorStack, thrown };
}

/** The experiment keeps its contract: declared, finite metrics; curves with matching x and y. */
function checkResult(exp: Experiment, r: ExperimentResult): void {
  for (const [k, v] of Object.entries(r.metrics)) {
    if (metricSpec(exp.metrics, k) === undefined) throw new Error(`${exp.name} returned metric '${k}' that its metrics schema does not declare`);
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`${exp.name} returned metric ${k} = ${String(v)}, not a finite number`);
  }
  for (const [k, c] of Object.entries(r.curves ?? {})) {
    if (c.x.length !== c.y.length) throw new Error(`${exp.name} curve ${k}: ${c.x.length} x values but ${c.y.length} y values`);
    for (let i = 0; i < c.x.length; i++) {
      if (!Number.isFinite(c.x[i]) || !Number.isFinite(c.y[i])) throw new Error(`${exp.name} curve ${k}: point ${i} is not finite`);
    }
  }
}

function sortedRecord<T>(o: Record<string, T>): Record<string, T> {
  const out: Record<string, T> = {};
  for (const k of Object.keys(o).sort()) out[k] = o[k]!;
  return out;
}

export function thinCurves(curves: Record<string, Curve>): Record<string, Curve> {
  const out: Record<string, Curve> = {};
  for (const k of Object.keys(curves).sort()) out[k] = thin(curves[k]!);
  return out;
}

function thin(c: Curve): Curve {
  const n = c.x.length;
  const labels = { ...(c.xLabel === undefined ? {} : { xLabel: c.xLabel }), ...(c.yLabel === undefined ? {} : { yLabel: c.yLabel }) };
  if (n <= MAX_CURVE_POINTS) return { x: [...c.x], y: [...c.y], xUnit: c.xUnit, yUnit: c.yUnit, ...labels };
  const x: number[] = [];
  const y: number[] = [];
  for (let i = 0; i < MAX_CURVE_POINTS; i++) {
    const j = Math.round((i * (n - 1)) / (MAX_CURVE_POINTS - 1));
    x.push(c.x[j]!);
    y.push(c.y[j]!);
  }
  return { x, y, xUnit: c.xUnit, yUnit: c.yUnit, ...labels };
}

/** The first n-1 lines and the last one (a SimError ends with its seed and time). */
function firstLines(text: string, n: number): string {
  const lines = text.split('\n');
  if (lines.length <= n) return text;
  return [...lines.slice(0, n - 2), `  ... ${lines.length - n + 1} more lines`, lines[lines.length - 1]!].join('\n');
}

/** "simulated 12.3 s in 0.8 s wall" */
export function clocksLine(virtualNs: number, wallMs: number): string {
  return `simulated ${formatSeconds(virtualNs / 1e9)} in ${formatSeconds(wallMs / 1e3)} wall`;
}

export function formatSeconds(s: number): string {
  if (s === 0) return '0 s';
  if (s < 1e-3) return `${(s * 1e6).toPrecision(3)} us`;
  if (s < 1) return `${(s * 1e3).toPrecision(3)} ms`;
  return `${s.toPrecision(3)} s`;
}
