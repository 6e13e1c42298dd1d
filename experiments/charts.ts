import type { Curve, ParamSpec, ParamValue, Params } from './experiment.ts';
import { fmt, paramLabel } from './format.ts';
import type { Aggregate, ResultSet } from './results.ts';
import type { RunRecord } from './run_record.ts';
import type { ChartSeries, ChartSpec } from './svg_chart.ts';

/**
 * Which charts a result set gets, chosen by what the data is, so every experiment is covered
 * without per-experiment code:
 *  - a metric against a numeric parameter the sweep varies, one line per value of the other
 *    varied parameters, points at the mean over seeds with 95% CI bars: small multiples, one
 *    small chart per metric (e.g. boot time against memory size, one line per strategy);
 *  - a distribution (a CDF curve: allocation latency, lock waits) as its survival function,
 *    1 - CDF, on log-log axes, where the 0.1% tail is as wide as the median;
 *  - values per vCPU as bars, one bar per run in each vCPU's group;
 *  - any other curve (memory accepted over time) as lines, one per run.
 * Series that coincide are drawn once, labelled with every run they stand for, and named in a note.
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

/** The rank of a parameter value in its spec's order: an enum's declared order, numbers ascending. */
function valueRank(spec: ParamSpec | undefined, v: ParamValue): number {
  if (spec?.type === 'enum') {
    const i = spec.values.indexOf(String(v));
    return i < 0 ? spec.values.length : i;
  }
  if (typeof v === 'boolean') return v ? 1 : 0;
  return typeof v === 'number' ? v : 0;
}

/**
 * A stable order for parameter sets of one experiment: by the varied parameters in schema
 * order, each by its values' natural order. Runs that arrive in any order give the same rows.
 */
export function compareParams(rs: ResultSet, experiment: string): (a: Params, b: Params) => number {
  const specs = rs.experiments[experiment]?.params ?? {};
  const varying = varyingParams(rs, experiment);
  return (a, b) => {
    for (const p of varying) {
      const d = valueRank(specs[p], a[p]!) - valueRank(specs[p], b[p]!);
      if (d !== 0) return d;
      const sa = String(a[p]);
      const sb = String(b[p]);
      if (sa !== sb) return sa < sb ? -1 : 1;
    }
    return 0;
  };
}

/** The aggregates of an experiment in the stable order of compareParams. */
export function orderedAggregates(rs: ResultSet, experiment: string): Aggregate[] {
  const cmp = compareParams(rs, experiment);
  return rs.aggregates.filter((a) => a.experiment === experiment).sort((a, b) => cmp(a.params, b.params));
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

/**
 * Series with exactly the same points are drawn once, under a label naming each of them; the
 * returned note says which coincide.
 */
export function mergeCoinciding(series: ChartSeries[]): { series: ChartSeries[]; notes: string[] } {
  const byPoints = new Map<string, ChartSeries[]>();
  for (const s of series) {
    const key = JSON.stringify(s.points);
    const same = byPoints.get(key);
    if (same === undefined) byPoints.set(key, [s]);
    else same.push(s);
  }
  const notes: string[] = [];
  const merged = [...byPoints.values()].map((same) => {
    if (same.length === 1) return same[0]!;
    const labels = same.map((s) => s.label);
    notes.push(`${labels.join(' and ')} coincide (one line drawn).`);
    return { label: labels.join(' = '), points: same[0]!.points };
  });
  return { series: merged, notes };
}

function metricCharts(rs: ResultSet, experiment: string): ChartGroup {
  const info = rs.experiments[experiment]!;
  const aggs = orderedAggregates(rs, experiment);
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
      const merged = mergeCoinciding([...lines].map(([label, as]) => ({
        label,
        points: as.map((a) => {
          const m = a.metrics[metric]!;
          const p = { x: a.params[xParam] as number, y: m.mean };
          return m.ci95 === null ? p : { ...p, lo: m.mean - m.ci95, hi: m.mean + m.ci95 };
        }),
      })));
      for (const n of merged.notes) notes.push(`${metric}: ${n}`);
      charts.push({
        id: `${experiment}.${metric}.vs.${xParam}`,
        title: metric,
        xLabel: unitLabel(xParam, spec.unit),
        yLabel: mspec.unit,
        xUnit: spec.unit,
        yUnit: mspec.unit,
        xLog: xValues.length > 2 && xValues[0]! > 0 && xValues[xValues.length - 1]! / xValues[0]! >= 16,
        xTicks: xValues,
        markers: true,
        small: true,
        series: merged.series,
      });
    }
    if (constant.length > 0) notes.push(`Not drawn against ${xParam}, the same in every run: ${constant.join(', ')}.`);
  }
  return { experiment, heading: `${experiment}: each metric against the swept parameters`, charts, notes };
}

function isDistribution(name: string, c: Curve): boolean {
  return /cdf/i.test(name) || c.yUnit === 'fraction';
}

function isPerVcpu(c: Curve): boolean {
  return c.xUnit === 'vCPU';
}

function curveCharts(rs: ResultSet, experiment: string): ChartGroup {
  const cmp = compareParams(rs, experiment);
  const runs = rs.runs.filter((r) => r.experiment === experiment && r.error === undefined).sort((a, b) => cmp(a.params, b.params) || a.seed - b.seed);
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
    const id = `${experiment}.curve.${name}`;
    const title = `${experiment}: ${name.replace(/_/g, ' ')}`;
    let chart: ChartSpec;
    let chartNotes: string[];
    if (isDistribution(name, first)) ({ chart, notes: chartNotes } = survivalChart(id, title, first, drawn.map((r) => ({ label: label(r), curve: r.curves[name]! }))));
    else if (isPerVcpu(first)) ({ chart, notes: chartNotes } = perVcpuChart(id, title, first, drawn.map((r) => ({ label: label(r), curve: r.curves[name]! }))));
    else ({ chart, notes: chartNotes } = lineChart(id, title, first, drawn.map((r) => ({ label: label(r), curve: r.curves[name]! }))));
    if (chart.series.length === 0) continue;
    charts.push(chart);
    for (const n of chartNotes) notes.push(`${name.replace(/_/g, ' ')}: ${n}`);
  }
  return { experiment, heading: `${experiment}: curves`, charts, notes };
}

interface Labelled {
  label: string;
  curve: Curve;
}

/**
 * A CDF as its survival function, 1 - F(x): the fraction of samples above x, on log-log axes.
 * Points at x <= 0 cannot sit on a log axis and are left out; at the largest sample, where
 * nothing is left above (1 - F = 0), the step is drawn out to it at the level before.
 */
function survivalChart(id: string, title: string, first: Curve, runs: Labelled[]): { chart: ChartSpec; notes: string[] } {
  const series = runs.map(({ label, curve }) => {
    const points: { x: number; y: number }[] = [];
    curve.x.forEach((x, i) => {
      if (!(x > 0)) return;
      const y = 1 - curve.y[i]!;
      // The largest sample leaves nothing above it: the step runs out to it at the level before.
      if (y > 1e-12) points.push({ x, y: Number(y.toPrecision(12)) });
      else if (points.length > 0) points.push({ x, y: points[points.length - 1]!.y });
    });
    return { label, points };
  }).filter((s) => s.points.length > 0);
  const merged = mergeCoinciding(series);
  const what = first.xLabel ?? 'value';
  const chart: ChartSpec = {
    id,
    title: `${title.replace(/ cdf\b/i, '')}: tail (1 - CDF)`,
    xLabel: axisTitle(what, first.xUnit),
    yLabel: `fraction of ${/^fraction of (\w+)/.exec(first.yLabel ?? '')?.[1] ?? 'samples'} above`,
    xUnit: first.xUnit,
    yUnit: '',
    xLog: true,
    yLog: true,
    step: true,
    series: merged.series,
  };
  const empty = runs.length - series.length;
  const notes = [...merged.notes];
  if (empty > 0) notes.push(`${empty} run(s) have no sample above zero: nothing to draw on a log axis.`);
  return { chart, notes };
}

/** Values per vCPU as grouped bars: one group per vCPU, one bar per run. */
function perVcpuChart(id: string, title: string, first: Curve, runs: Labelled[]): { chart: ChartSpec; notes: string[] } {
  const n = Math.max(...runs.map((r) => r.curve.x.length));
  const merged = mergeCoinciding(runs.map(({ label, curve }) => ({ label, points: curve.x.map((x, i) => ({ x, y: curve.y[i]! })) })));
  return {
    chart: {
      id,
      title,
      kind: 'bars',
      categories: Array.from({ length: n }, (_, i) => `vCPU ${i}`),
      xLabel: 'vCPU',
      yLabel: axisTitle(first.yLabel ?? '', first.yUnit),
      yUnit: first.yUnit,
      series: merged.series,
    },
    notes: merged.notes,
  };
}

function lineChart(id: string, title: string, first: Curve, runs: Labelled[]): { chart: ChartSpec; notes: string[] } {
  const merged = mergeCoinciding(runs.map(({ label, curve }) => ({ label, points: curve.x.map((x, i) => ({ x, y: curve.y[i]! })) })));
  const xName = first.xLabel ?? (TIME_UNITS.has(first.xUnit) ? 'virtual time' : '');
  return {
    chart: {
      id,
      title,
      xLabel: axisTitle(xName, first.xUnit),
      yLabel: axisTitle(first.yLabel ?? '', first.yUnit),
      xUnit: first.xUnit,
      yUnit: first.yUnit,
      markers: runs.every((r) => r.curve.x.length <= 30),
      series: merged.series,
    },
    notes: merged.notes,
  };
}

const TIME_UNITS = new Set(['ns', 'us', 'ms', 's']);

function axisTitle(name: string, unit: string): string {
  if (name === '') return unit;
  return unit === '' ? name : `${name} (${unit})`;
}

/** Tail metrics drawn as bars per policy, in microseconds: the metric and its factor to us. */
const TAIL_BARS: { metric: string; label: string; toUs: number }[] = [
  { metric: 'alloc_p99_us', label: 'p99', toUs: 1 },
  { metric: 'alloc_p999_us', label: 'p99.9', toUs: 1 },
  { metric: 'alloc_max_ms', label: 'max', toUs: 1000 },
];

/**
 * Bars of the latency tail (p99, p99.9, max) per parameter set, on a log axis, for an
 * experiment that reports them: the chart of the decision summary. Null when it reports none.
 */
export function tailBars(rs: ResultSet, experiment: string): ChartSpec | null {
  const aggs = orderedAggregates(rs, experiment).filter((a) => TAIL_BARS.some((t) => a.metrics[t.metric] !== undefined));
  if (aggs.length === 0) return null;
  const varying = varyingParams(rs, experiment);
  const categories = aggs.map((a) => (varying.length === 0 ? 'default' : paramLabel(a.params, varying)));
  const series = TAIL_BARS.map((t) => ({
    label: t.label,
    points: aggs.flatMap((a, i) => {
      const m = a.metrics[t.metric];
      return m === undefined || !(m.mean > 0) ? [] : [{ x: i, y: Number((m.mean * t.toUs).toPrecision(12)) }];
    }),
  }));
  return {
    id: `${experiment}.tail_bars`,
    title: `${experiment}: allocation latency tail per policy`,
    kind: 'bars',
    categories,
    xLabel: varying.join(', ') || 'parameters',
    yLabel: 'allocation latency (us)',
    yUnit: 'us',
    yLog: true,
    series,
  };
}
