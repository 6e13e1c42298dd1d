import { orderedAggregates, varyingParams } from './charts.ts';
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
  /** Said when several seeds ran and none changed any metric: the runs are deterministic. */
  seedNote: string | null;
}

export function cell(m: MetricAggregate | undefined): string {
  if (m === undefined) return '';
  return m.ci95 === null ? fmt(m.mean) : `${fmt(m.mean)} ± ${fmt(m.ci95)}`;
}

export function summarize(rs: ResultSet): ExperimentSummary[] {
  return Object.entries(rs.experiments).map(([name, info]) => {
    const aggs = orderedAggregates(rs, name);
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
      seedNote: seedNote(aggs),
    };
  });
}

/**
 * Several seeds per parameter set, and every metric the same for all of them: a ± 0 is not a
 * measured absence of spread but a configuration that nothing random touches, and the reader
 * should know the extra seeds repeated the same run.
 */
function seedNote(aggs: readonly { seeds: readonly number[]; metrics: Record<string, MetricAggregate> }[]): string | null {
  const multi = aggs.filter((a) => a.seeds.length >= 2);
  if (multi.length === 0 || !multi.every((a) => Object.values(a.metrics).every((m) => m.sd === 0))) return null;
  return 'Every seed gave the same results: these runs are deterministic (nothing in this configuration draws from the seed, e.g. variation=false, paced arrivals, no shared host CPUs); more seeds repeat the same run.';
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

/**
 * The metrics of one experiment as rows and its parameter sets as columns, in tables of at most
 * `maxSets` columns, so a sweep's table fits the page however many metrics it has.
 */
export interface MetricMatrix {
  /** Column headings, one per parameter set ("memory_gib=4, accept=lazy, 2 seeds"). */
  sets: string[];
  /** metric (unit), then one cell per set. */
  rows: { metric: string; unit: string; description: string; cells: string[] }[];
}

export function metricMatrices(rs: ResultSet, experiment: string, maxSets = 4): MetricMatrix[] {
  const info = rs.experiments[experiment]!;
  const aggs = orderedAggregates(rs, experiment);
  const varying = varyingParams(rs, experiment);
  const metricNames = Object.keys(info.metrics).filter((m) => aggs.some((a) => a.metrics[m] !== undefined));
  const out: MetricMatrix[] = [];
  for (let i = 0; i < aggs.length; i += maxSets) {
    const part = aggs.slice(i, i + maxSets);
    out.push({
      sets: part.map((a) => `${paramLabel(a.params, varying)}, ${a.seeds.length - a.failed} seed${a.seeds.length - a.failed === 1 ? '' : 's'}${a.failed > 0 ? ` (+${a.failed} failed)` : ''}`),
      rows: metricNames.map((m) => ({
        metric: m,
        unit: info.metrics[m]!.unit,
        description: info.metrics[m]!.description,
        cells: part.map((a) => cell(a.metrics[m])),
      })),
    });
  }
  return out;
}

// ---- The decision summary -----------------------------------------------------------------

/**
 * Parameters that choose a policy the questions compare (Q1: how guest memory is accepted).
 * The Q2-Q4 policies join this list as their experiments arrive.
 */
export const POLICY_PARAMS = ['accept', 'policy'];

/** What the decision summary compares, in this order; lower is better for every one. */
export const DECISION_METRICS: { metric: string; label: string; unit: string; scale?: number }[] = [
  { metric: 'boot_to_userspace_s', label: 'boot to shell', unit: 's' },
  { metric: 'alloc_p99_us', label: 'alloc p99', unit: 'us' },
  { metric: 'alloc_p999_us', label: 'alloc p99.9', unit: 'us' },
  { metric: 'alloc_max_ms', label: 'alloc max', unit: 'ms' },
  { metric: 'spikes_over_1ms', label: 'allocs > 1 ms', unit: 'allocations' },
  { metric: 'accept_cpu_s', label: 'vCPU time accepting', unit: 's' },
  { metric: 'app_accept_s', label: 'of it, in allocations', unit: 's' },
  { metric: 'background_accept_s', label: 'of it, in acceptor threads', unit: 's' },
  { metric: 'host.memory_bandwidth.bytes', label: 'memory traffic', unit: 'GiB', scale: 1 / 2 ** 30 },
];

export interface DecisionCell {
  text: string;
  mean: number | null;
  best: boolean;
}

export interface DecisionTable {
  experiment: string;
  question: string;
  policy: string;
  /** The other parameters that vary (each combination is a group of rows compared on its own). */
  groupBy: string[];
  /** Parameters every row shares, "k=v, ...". */
  fixed: string;
  columns: { metric: string; label: string; unit: string }[];
  groups: {
    label: string;
    rows: { policy: string; cells: DecisionCell[] }[];
    /** Per column: the best policy (or policies, "a, b"), or "all equal". */
    best: string[];
  }[];
}

/**
 * Per experiment that varies a policy parameter: the policies side by side on the metrics the
 * questions ask about (boot time, the allocation tail, the CPU and memory traffic acceptance
 * takes), the best value per column marked. Experiments with the allocation tail come first.
 */
export function decisionTables(rs: ResultSet): DecisionTable[] {
  const tables: DecisionTable[] = [];
  for (const [experiment, info] of Object.entries(rs.experiments)) {
    const varying = varyingParams(rs, experiment);
    const policy = POLICY_PARAMS.find((p) => varying.includes(p));
    if (policy === undefined) continue;
    const aggs = orderedAggregates(rs, experiment);
    const columns = DECISION_METRICS.filter((d) => aggs.some((a) => a.metrics[d.metric] !== undefined));
    if (columns.length === 0) continue;
    const groupBy = varying.filter((p) => p !== policy);
    const groups = new Map<string, typeof aggs>();
    for (const a of aggs) {
      const key = groupBy.length === 0 ? '' : paramLabel(a.params, groupBy);
      let g = groups.get(key);
      if (g === undefined) groups.set(key, (g = []));
      g.push(a);
    }
    const fixedNames = Object.keys(info.params).filter((p) => !varying.includes(p));
    tables.push({
      experiment,
      question: info.question,
      policy,
      groupBy,
      fixed: aggs.length === 0 ? '' : paramLabel(aggs[0]!.params, fixedNames),
      columns: columns.map(({ metric, label, unit }) => ({ metric, label, unit })),
      groups: [...groups].map(([label, members]) => {
        const rows = members.map((a) => ({
          policy: String(a.params[policy]),
          cells: columns.map((d) => {
            const m = a.metrics[d.metric];
            if (m === undefined) return { text: '', mean: null, best: false };
            const k = d.scale ?? 1;
            const scaled = { ...m, mean: m.mean * k, ci95: m.ci95 === null ? null : m.ci95 * k };
            return { text: cell(scaled), mean: scaled.mean, best: false };
          }),
        }));
        const best = columns.map((_, c) => {
          const means = rows.map((r) => r.cells[c]!.mean).filter((v): v is number => v !== null);
          if (means.length === 0) return '';
          const min = Math.min(...means);
          const winners = rows.filter((r) => r.cells[c]!.mean !== null && r.cells[c]!.mean! <= min + Math.abs(min) * 1e-9);
          for (const r of winners) r.cells[c]!.best = true;
          return winners.length === rows.length ? 'all equal' : winners.map((r) => r.policy).join(', ');
        });
        return { label, rows, best };
      }),
    });
  }
  const hasTail = (t: DecisionTable) => t.columns.some((c) => c.metric.startsWith('alloc_'));
  return tables.sort((a, b) => Number(hasTail(b)) - Number(hasTail(a)) || (a.experiment < b.experiment ? -1 : 1));
}

// ---- The outcome table (Q3): policy by scenario, safe / unsafe / refused safe memory ----------

/** An experiment reporting these flags gets an outcome table in the decision summary. */
export const OUTCOME_METRICS = { unsafe: 'outcome_unsafe', refused: 'outcome_refused_safe', failed: 'outcome_init_failed' } as const;

export interface OutcomeTable {
  experiment: string;
  question: string;
  policy: string;
  /** The scenario parameters (every other varying parameter), joined in each column label. */
  scenarioParams: string[];
  columns: string[];
  rows: { policy: string; cells: string[] }[];
}

/**
 * Per experiment that varies a policy and reports the outcome flags: one row per policy, one
 * column per scenario, each cell "safe", "unsafe", "refused safe memory" or "init failed"
 * (joined with " + " when several hold in some seed), read from the runs' flags.
 */
export function outcomeTables(rs: ResultSet): OutcomeTable[] {
  const out: OutcomeTable[] = [];
  for (const [experiment, info] of Object.entries(rs.experiments)) {
    if (info.metrics[OUTCOME_METRICS.unsafe] === undefined) continue;
    const varying = varyingParams(rs, experiment);
    const policy = POLICY_PARAMS.find((p) => varying.includes(p));
    if (policy === undefined) continue;
    const scenarioParams = varying.filter((p) => p !== policy);
    const aggs = orderedAggregates(rs, experiment);
    const columns: string[] = [];
    const rows = new Map<string, Map<string, string>>();
    for (const a of aggs) {
      const column = scenarioParams.length === 0 ? 'all' : scenarioParams.map((p) => String(a.params[p])).join(', ');
      if (!columns.includes(column)) columns.push(column);
      const pol = String(a.params[policy]);
      let row = rows.get(pol);
      if (row === undefined) rows.set(pol, (row = new Map()));
      const flag = (m: string) => (a.metrics[m]?.mean ?? 0) > 0;
      const parts: string[] = [];
      if (flag(OUTCOME_METRICS.failed)) parts.push('init failed');
      if (flag(OUTCOME_METRICS.unsafe)) parts.push('unsafe');
      if (flag(OUTCOME_METRICS.refused)) parts.push('refused safe memory');
      row.set(column, parts.length === 0 ? 'safe' : parts.join(' + '));
    }
    out.push({
      experiment,
      question: info.question,
      policy,
      scenarioParams,
      columns,
      rows: [...rows].map(([p, cells]) => ({ policy: p, cells: columns.map((c) => cells.get(c) ?? '') })),
    });
  }
  return out;
}
