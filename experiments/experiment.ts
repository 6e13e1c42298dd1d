import type { MetricSpec, MetricSpecs, Sim } from '../sim/index.ts';

/**
 * An experiment: a question (Q1..Q4, see the README), typed parameters with defaults and units, the model
 * wiring, and the metrics it reports. The runner creates the Sim from the seed (and attaches a
 * trace observer when asked) and calls run(); run builds the model on that Sim, runs it and
 * returns the metrics. One experiment per file under experiments/, registered in registry.ts.
 *
 * Parameters are declared once, with numberParam / enumParam / booleanParam: the declaration
 * carries the type, unit, allowed values and default, and run() receives ParamsOf<its specs>,
 * so `p.accept` is `'eager' | 'lazy' | 'background'` in the model wiring without a cast. An
 * enum's values come from the model that owns them (e.g. TDX_MODULE_VERSIONS), not a copy.
 *
 * `source` says where a default comes from: one or more keys of docs/sources.md, each in square
 * brackets (`'[edk2:PcdLazyAcceptPartialMemorySize] [linux:Documentation/arch/x86/tdx.rst]'`).
 * `cvmsim describe` prints it beside the default; a parameter without one is a setting of the
 * experiment (a size, a count, a switch between models), not a sourced value.
 */
export interface NumberParam {
  type: 'number';
  default: number;
  unit: string;
  description: string;
  min?: number;
  max?: number;
  integer?: boolean;
  source?: string;
}
export interface EnumParam<V extends string = string> {
  type: 'enum';
  default: V;
  values: readonly V[];
  description: string;
  source?: string;
  /**
   * A preset: for some of its values, defaults of other parameters (e.g. kernel_config=defconfig
   * sets deferred_struct_page_init=false). Applied when the parameters are resolved
   * (params.ts applyPresets): a parameter given explicitly (--config, --set, a baseline case)
   * keeps its value.
   */
  presets?: Readonly<Record<string, Readonly<Record<string, ParamValue>>>>;
}
export interface BooleanParam {
  type: 'boolean';
  default: boolean;
  description: string;
  source?: string;
}
export type ParamSpec = NumberParam | EnumParam | BooleanParam;
export type ParamSpecs = Record<string, ParamSpec>;

export type ParamValue = number | string | boolean;
/** Parameter values as the CLI and result files carry them, checked against the specs. */
export type Params = Record<string, ParamValue>;

/** The value type a spec declares. */
export type ParamValueOf<S> = S extends NumberParam ? number : S extends EnumParam<infer V> ? V : S extends BooleanParam ? boolean : never;
/** The typed parameters run() receives for specs S. */
export type ParamsOf<S extends ParamSpecs> = { readonly [K in keyof S]: ParamValueOf<S[K]> };

export function numberParam(spec: Omit<NumberParam, 'type'>): NumberParam {
  return { type: 'number', ...spec };
}

export function enumParam<const V extends string>(values: readonly V[], defaultValue: NoInfer<V>, description: string, source?: string): EnumParam<V> {
  return { type: 'enum', values, default: defaultValue, description, ...(source === undefined ? {} : { source }) };
}

/** `spec` with presets: for a value, the defaults it gives other parameters. */
export function withPresets<V extends string>(spec: EnumParam<V>, presets: Partial<Record<V, Readonly<Record<string, ParamValue>>>>): EnumParam<V> {
  return { ...spec, presets: presets as Record<string, Readonly<Record<string, ParamValue>>> };
}

export function booleanParam(defaultValue: boolean, description: string, source?: string): BooleanParam {
  return { type: 'boolean', default: defaultValue, description, ...(source === undefined ? {} : { source }) };
}

export type { MetricSpec, MetricSpecs, Tolerance } from '../sim/index.ts';

/** The spec of metric `name`: its own entry, or the most specific family that matches it. */
export function metricSpec(specs: MetricSpecs, name: string): MetricSpec | undefined {
  if (Object.hasOwn(specs, name)) return specs[name];
  let best: MetricSpec | undefined;
  let bestLiteral = -1;
  for (const [pattern, spec] of Object.entries(specs)) {
    if (!pattern.includes('*') || !familyRegExp(pattern).test(name)) continue;
    const literal = pattern.replaceAll('*', '').length;
    if (literal > bestLiteral) (best = spec), (bestLiteral = literal);
  }
  return best;
}

const familyCache = new Map<string, RegExp>();
function familyRegExp(pattern: string): RegExp {
  let re = familyCache.get(pattern);
  if (re === undefined) {
    const body = pattern.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('[^.]+');
    familyCache.set(pattern, (re = new RegExp(`^${body}$`)));
  }
  return re;
}

/** A curve for reports: x and y with their units (and, optionally, what the axes measure). */
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

export interface Experiment<S extends ParamSpecs = ParamSpecs> {
  name: string;
  /** The question it answers (Q1..Q4, see the README), one sentence. */
  question: string;
  params: S;
  /** The metrics it reports, its own and (as families) the model owners'. */
  metrics: MetricSpecs;
  /**
   * Optional: why a combination of individually valid values is refused (e.g. accept=background
   * needs allocator=upstream), naming the parameters and what they need; undefined when it is
   * fine. The CLI calls it before any run and reports a refusal as bad input (exit 2).
   */
  check?(params: ParamsOf<S>): string | undefined;
  /** Builds the model on sim with validated params, runs it to the end, returns the metrics. */
  run(params: ParamsOf<S>, sim: Sim): ExperimentResult;
}

/** Every parameter at its default, typed. */
export function defaultsOf<S extends ParamSpecs>(specs: S): ParamsOf<S> {
  const out: Record<string, ParamValue> = {};
  for (const [k, spec] of Object.entries(specs)) out[k] = spec.default;
  // Each value is its spec's default, so of the type ParamsOf<S> gives that key.
  return out as ParamsOf<S>;
}
