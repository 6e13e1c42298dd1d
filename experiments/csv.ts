import type { ResultSet } from './results.ts';

/**
 * results.csv: one row per run (experiment, seed, every parameter, every metric, fingerprint,
 * virtual time, events, error), RFC 4180 quoting, metrics to 12 significant digits (enough for
 * any metric, and free of binary residue such as 2.3090209619999995). Parameter and metric
 * columns are the union over the runs, sorted; a metric whose name is also a parameter's gets a
 * `metric.` prefix.
 */
export function renderCsv(rs: ResultSet): string {
  const params = [...new Set(rs.runs.flatMap((r) => Object.keys(r.params)))].sort();
  const metrics = [...new Set(rs.runs.flatMap((r) => Object.keys(r.metrics)))].sort();
  const header = [
    'experiment', 'seed', ...params,
    ...metrics.map((m) => (params.includes(m) ? `metric.${m}` : m)),
    'fingerprint', 'virtual_ns', 'events_executed', 'error',
  ];
  const lines = [header.map(quote).join(',')];
  for (const r of rs.runs) {
    const row = [
      r.experiment, String(r.seed),
      ...params.map((p) => (Object.hasOwn(r.params, p) ? String(r.params[p]) : '')),
      ...metrics.map((m) => (Object.hasOwn(r.metrics, m) ? csvNumber(r.metrics[m]!) : '')),
      r.fingerprint, String(r.virtualNs), String(r.eventsExecuted), r.error ?? '',
    ];
    lines.push(row.map(quote).join(','));
  }
  return `${lines.join('\r\n')}\r\n`;
}

/** Significant digits of a metric in results.csv (results.json keeps every digit). */
export const CSV_DIGITS = 12;

export function csvNumber(v: number): string {
  return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(CSV_DIGITS)));
}

function quote(s: string): string {
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}
