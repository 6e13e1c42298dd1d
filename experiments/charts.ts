import type { Curve, ParamValue } from './experiment.ts';
import { fmt, paramLabel } from './format.ts';
import type { Aggregate, ResultSet } from './results.ts';
import type { RunRecord } from './run_record.ts';
import type { ChartSpec } from './svg_chart.ts';

/**
 * Which charts a result set gets. Two generic kinds, so every experiment is covered without
 * per-experiment code:
 *  - a metric against a numeric parameter that the sweep varies, one line per value of the other
 *    varied parameters, points at the mean over seeds with 95% CI bars (e.g. boot time against
 *    memory size, one line per acceptance strategy);
 *  - every curve the runs return (latency CDFs, memory accepted over time, lock wait
 *    distributions), one chart per curve name, one line per run.
 */
export interface ChartGroup {
  experiment: string;
  heading: string;
  charts: ChartSpec[];
  notes: string[];
}

/** At most this many lines per curve chart; beyond it, the lowest seed of each parameter set is drawn. */
export const MAX_LINES = 12;

/** Parameters whose value differs between the runs of one experiment, in schema order. */
export function varyingParams(rs: ResultSet, experiment: string): string[] {
  const aggs = rs.aggregates.filter((a) => a.experiment === experiment);
  const names = Object.keys(rs.experiments[experiment]?.params ?? {});
  return names.filter((n) => new Set(aggs.map((a) => JSON.stringify(a.params[n]))).size > 1);
}

export function chartGroups(rs: ResultSet): ChartGroup[] {
  const groups: ChartGroup[] = [];
  for (const name of Object.keys(rs.experiments)) {
    const g = metricCharts(rs, name);
    if (g.charts.length > 0 || g.notes.length > 0) groups.push(g);
    const c = curveCharts(rs, name);
    if (c.charts.length > 0 || c.notes.length > 0) groups.push(c);
  }
  return groups;
}

function unitLabel(name: string, unit: string): string {
  return unit === '' ? name : `${name} (${unit})`;
}

function metricCharts(rs: ResultSet, experiment: string): ChartGroup {
  const info = rs.experiments[experiment]!;
  const aggs = rs.aggregates.filter((a) => a.experiment === experiment);
  const varying = varyingParams(rs, experiment);
  const charts: ChartSpec[] = [];
  const notes: string[] = [];
  for (const xParam of varying) {
    const spec = info.params[xParam]!;
    if (spec.type !== 'number') continue;
    const others = varying.filter((p) => p !== xParam);
    const xValues = [...new Set(aggs.map((a) => a.params[xParam] as number))].sort((a, b) => a - b);
    const constant: string[] = [];
    for (const [metric, mspec] of Object.entries(info.metrics)) {
      const means = aggs.flatMap((a) => (a.metrics[metric] === undefined ? [] : [a.metrics[metric]!.mean]));
      if (means.length > 0 && means.every((m) => m === means[0])) {
        constant.push(`${metric} = ${fmt(means[0]!)}`);
        continue;
      }
      const lines = new Map<string, Aggregate[]>();
      for (const a of aggs) {
        if (a.metrics[metric] === undefined) continue;
        const label = others.length === 0 ? 'mean over seeds' : paramLabel(a.params, others);
        let l = lines.get(label);
        if (l === undefined) lines.set(label, (l = []));
        l.push(a);
      }
      if (lines.size === 0) continue;
      charts.push({
        id: `${experiment}.${metric}.vs.${xParam}`,
        title: `${experiment}: ${metric} vs ${xParam}`,
        xLabel: unitLabel(xParam, spec.unit),
        yLabel: unitLabel(metric, mspec.unit),
        xLog: xValues.length > 2 && xValues[0]! > 0 && xValues[xValues.length - 1]! / xValues[0]! >= 16,
        xTicks: xValues,
        markers: true,
        series: [...lines].map(([label, as]) => ({
          label,
          points: as.map((a) => {
            const m = a.metrics[metric]!;
            const p = { x: a.params[xParam] as number, y: m.mean };
            return m.ci95 === null ? p : { ...p, lo: m.mean - m.ci95, hi: m.mean + m.ci95 };
          }),
        })),
      });
    }
    if (constant.length > 0) notes.push(`Not drawn against ${xParam}, the same in every run: ${constant.join(', ')}.`);
  }
  return { experiment, heading: `${experiment}: metrics against swept parameters`, charts, notes };
}

function isDistribution(name: string, c: Curve): boolean {
  return /cdf/i.test(name) || c.yUnit === 'fraction';
}

function curveCharts(rs: ResultSet, experiment: string): ChartGroup {
  const runs = rs.runs.filter((r) => r.experiment === experiment && r.error === undefined);
  const varying = varyingParams(rs, experiment);
  const names = [...new Set(runs.flatMap((r) => Object.keys(r.curves)))].sort();
  const charts: ChartSpec[] = [];
  const notes: string[] = [];
  for (const name of names) {
    let drawn = runs.filter((r) => r.curves[name] !== undefined && r.curves[name]!.x.length > 0);
    const total = drawn.length;
    if (drawn.length > MAX_LINES) {
      const seen = new Set<string>();
      drawn = drawn.filter((r) => {
        const k = JSON.stringify(varying.map((v) => r.params[v] as ParamValue));
        if (seen.has(k)) return false;
        seen.add(k);
        return true;
      }).slice(0, MAX_LINES);
      notes.push(`${name}: ${drawn.length} of ${total} runs drawn (the lowest seed of each parameter set${drawn.length < seen.size ? `, first ${MAX_LINES} sets` : ''}); every curve is in results.json.`);
    }
    if (drawn.length === 0) continue;
    const first = drawn[0]!.curves[name]!;
    const multiSeed = new Set(drawn.map((r) => r.seed)).size > 1;
    const label = (r: RunRecord) => {
      const parts = [varying.length > 0 ? paramLabel(r.params, varying) : '', multiSeed || varying.length === 0 ? `seed ${r.seed}` : ''].filter((s) => s !== '');
      return parts.join(', ');
    };
    const xs = drawn.flatMap((r) => r.curves[name]!.x);
    const xMin = Math.min(...xs);
    const xMax = Math.max(...xs);
    const dist = isDistribution(name, first);
    const xName = first.xLabel ?? (dist ? 'value' : TIME_UNITS.has(first.xUnit) ? 'virtual time' : '');
    const yName = first.yLabel ?? (dist ? 'fraction of samples <= value' : '');
    charts.push({
      id: `${experiment}.curve.${name}`,
      title: `${experiment}: ${name.replace(/_/g, ' ')}`,
      xLabel: axisTitle(xName, first.xUnit),
      yLabel: axisTitle(yName, dist && first.yUnit === 'fraction' ? '' : first.yUnit),
      xLog: dist && xMin > 0 && xMax / xMin >= 1000,
      yRange: dist ? [0, 1] : undefined,
      step: dist,
      markers: drawn.every((r) => r.curves[name]!.x.length <= 30),
      series: drawn.map((r) => {
        const c = r.curves[name]!;
        return { label: label(r), points: c.x.map((x, i) => ({ x, y: c.y[i]! })) };
      }),
    });
  }
  return { experiment, heading: `${experiment}: curves`, charts, notes };
}

const TIME_UNITS = new Set(['ns', 'us', 'ms', 's']);

function axisTitle(name: string, unit: string): string {
  if (name === '') return unit;
  return unit === '' ? name : `${name} (${unit})`;
}
