/**
 * Declarations of metrics: a name (or a family, `*` standing for one dot-free part), its unit,
 * what it means and how far it may move before a timing regression is called. Models declare
 * their owners' metric tables with these, next to the code that writes the values; experiments
 * collect them under the owners' prefixes.
 */
export type Tolerance =
  | { kind: 'exact' }
  | { kind: 'relative'; value: number }
  | { kind: 'absolute'; value: number };

export interface MetricSpec {
  unit: string;
  description: string;
  tolerance: Tolerance;
}
export type MetricSpecs = Record<string, MetricSpec>;

/** A count of events or things: compared exactly. */
export function countMetric(unit: string, description: string): MetricSpec {
  return { unit, description, tolerance: { kind: 'exact' } };
}

/** A time, size or rate from the model's timing: compared within 5%. */
export function measureMetric(unit: string, description: string): MetricSpec {
  return { unit, description, tolerance: { kind: 'relative', value: 0.05 } };
}

/** The same specs with every name under `prefix` (`vm*.kvm` + `exits.*`). */
export function prefixedMetrics(prefix: string, specs: MetricSpecs): MetricSpecs {
  const out: MetricSpecs = {};
  for (const [name, spec] of Object.entries(specs)) out[`${prefix}.${name}`] = spec;
  return out;
}
