import type { Sim } from '../sim/index.ts';

/**
 * An experiment: a question from design.md, typed parameters with defaults and units, the model
 * wiring, and the metrics it reports. The runner creates the Sim from the seed (and attaches a
 * trace observer when asked) and calls run(); run builds the model on that Sim, runs it and
 * returns the metrics. One experiment per file under experiments/, registered in registry.ts.
 */
export type ParamSpec =
  | {
      type: 'number';
      default: number;
      unit: string;
      description: string;
      min?: number;
      max?: number;
      integer?: boolean;
    }
  | { type: 'enum'; default: string; values: readonly string[]; description: string }
  | { type: 'boolean'; default: boolean; description: string };

export type ParamValue = number | string | boolean;
export type Params = Record<string, ParamValue>;

/** How far a metric may move before `regress` calls it a regression. */
export type Tolerance =
  | { kind: 'exact' }
  | { kind: 'relative'; value: number }
  | { kind: 'absolute'; value: number };

export interface MetricSpec {
  unit: string;
  description: string;
  tolerance: Tolerance;
}

/** A named curve for reports: x and y with their units (and, optionally, what the axes measure). */
export interface Curve {
  x: number[];
  y: number[];
  xUnit: string;
  yUnit: string;
  /** Axis titles for the chart, e.g. 'virtual time', 'allocation latency'; units are added. */
  xLabel?: string;
  yLabel?: string;
}

export interface ExperimentResult {
  metrics: Record<string, number>;
  /** Curves for charts: memory accepted over time, latency CDFs, lock wait distributions. */
  curves?: Record<string, Curve>;
}

export interface Experiment {
  name: string;
  /** The question it answers (design.md Q1..Q4), one sentence. */
  question: string;
  params: Record<string, ParamSpec>;
  metrics: Record<string, MetricSpec>;
  /**
   * Optional: why a combination of individually valid values is refused (e.g. accept=background
   * needs allocator=upstream), naming the parameters and what they need; undefined when it is
   * fine. The CLI calls it before any run and reports a refusal as bad input (exit 2).
   */
  check?(params: Params): string | undefined;
  /** Builds the model on sim with validated params, runs it to the end, returns the metrics. */
  run(params: Params, sim: Sim): ExperimentResult;
}
