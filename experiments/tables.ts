import { varyingParams } from './charts.ts';
import { fmt, paramLabel } from './format.ts';
import type { MetricAggregate } from './aggregate.ts';
import { metricSpec } from './experiment.ts';
import type { ResultSet, SweepSpec } from './results.ts';

/**
 * The tables of summary.md and report.html: per experiment, the parameters it was run with and
 * every metric as mean ± 95% CI half-width over seeds, with units. One aggregate (a single
 * parameter set) is shown as a metric-per-row table; several as one row per parameter set.
 */
export interface Table {
  header: string[];
  rows: string[][];
}

export interface ExperimentSummary {
  experiment: string;
  question: string;
  /** Parameters shared by every run, "k=v, ...". */
  fixed: string;
  runs: number;
  failed: { label: string; error: string }[];
  table: Table;
  /** One row per metric (a single parameter set) rather than one row per parameter set. */
  vertical: boolean;
  /** Index of the first metric column (wide tables). */
  firstMetricColumn: number;
}

export function cell(m: MetricAggregate | undefined): string {
  if (m === undefined) return '';
  return m.ci95 === null ? fmt(m.mean) : `${fmt(m.mean)} ± ${fmt(m.ci95)}`;
}

export function summarize(rs: ResultSet): ExperimentSummary[] {
  return Object.entries(rs.experiments).map(([name, info]) => {
    const aggs = rs.aggregates.filter((a) => a.experiment === name);
    const runs = rs.runs.filter((r) => r.experiment === name);
    const varying = varyingParams(rs, name);
    const fixedNames = Object.keys(info.params).filter((p) => !varying.includes(p));
    // The experiment's own metrics, in its order; a single parameter set also lists the model
    // owners' metrics (families such as vm*.kvm.exits.*), which a sweep's table leaves to the CSV.
    const metricNames = Object.keys(info.metrics).filter((m) => aggs.some((a) => a.metrics[m] !== undefined));
    let table: Table;
    if (aggs.length === 1) {
      const a = aggs[0]!;
      const owned = Object.keys(a.metrics).filter((m) => !Object.hasOwn(info.metrics, m) && metricSpec(info.metrics, m) !== undefined);
      table = {
        header: ['metric', `value (${seedsText(a.seeds.length)})`, 'unit', 'description'],
        rows: [...metricNames, ...owned].map((m) => [m, cell(a.metrics[m]), metricSpec(info.metrics, m)!.unit, metricSpec(info.metrics, m)!.description]),
      };
    } else {
      table = {
        header: [...varying, 'seeds', ...metricNames.map((m) => (info.metrics[m]!.unit === '' ? m : `${m} (${info.metrics[m]!.unit})`))],
        rows: aggs.map((a) => [
          ...varying.map((p) => String(a.params[p])),
          String(a.seeds.length - a.failed) + (a.failed > 0 ? ` (+${a.failed} failed)` : ''),
          ...metricNames.map((m) => cell(a.metrics[m])),
        ]),
      };
    }
    return {
      experiment: name,
      question: info.question,
      fixed: aggs.length === 0 ? '' : paramLabel(aggs[0]!.params, fixedNames),
      runs: runs.length,
      failed: runs.filter((r) => r.error !== undefined).map((r) => ({
        label: `${varying.length > 0 ? `${paramLabel(r.params, varying)}, ` : ''}seed ${r.seed}`,
        error: r.error!,
      })),
      table,
      vertical: aggs.length === 1,
      firstMetricColumn: aggs.length === 1 ? 1 : varying.length + 1,
    };
  });
}

function seedsText(n: number): string {
  return n === 1 ? '1 seed' : `mean ± 95% CI over ${n} seeds`;
}

export function describeSweep(s: SweepSpec | null): string {
  if (s === null) return 'the default suite';
  const grid = s.grid.map((g) => `${g.param} in {${g.values.join(', ')}}`).join(' x ');
  const seeds = s.seeds.length === 1 ? `seed ${s.seeds[0]}` : `seeds ${s.seeds[0]}..${s.seeds[s.seeds.length - 1]}`;
  return `${s.experiment}${grid === '' ? '' : `, ${grid}`}, ${seeds}`;
}
