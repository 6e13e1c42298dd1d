import { existsSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { writeFileAtomic } from './atomic_write.ts';
import { renderCsv } from './csv.ts';
import { JOURNAL_FILE } from './journal.ts';
import { renderReportHtml } from './report_html.ts';
import { readResultSet, RESULTS_FILE, type ResultSet } from './results.ts';
import { renderSummaryMarkdown } from './summary_md.ts';
import { describeSweep } from './tables.ts';
import { UsageError } from './usage_error.ts';

/**
 * Writes a result set's four outputs into dir (created and checked beforehand, output_paths.ts),
 * each to a temporary file then renamed: results.json, results.csv, summary.md, report.html.
 * Returns their paths.
 */
export interface OutputPaths {
  results: string;
  csv: string;
  summary: string;
  report: string;
}

export function writeOutputs(dir: string, rs: ResultSet): OutputPaths {
  const paths: OutputPaths = {
    results: join(dir, RESULTS_FILE),
    csv: join(dir, 'results.csv'),
    summary: join(dir, 'summary.md'),
    report: join(dir, 'report.html'),
  };
  writeFileAtomic(paths.results, resultsJson(rs));
  writeFileAtomic(paths.csv, renderCsv(rs));
  writeFileAtomic(paths.summary, renderSummaryMarkdown(rs));
  writeReport(dir, rs);
  return paths;
}

/** report.html alone (the `report` command), linking any trace files under dir/traces. */
export function writeReport(dir: string, rs: ResultSet): string {
  const path = join(dir, 'report.html');
  writeFileAtomic(path, renderReportHtml(rs, traceLinks(dir)));
  return path;
}

export function traceLinks(dir: string): { label: string; href: string }[] {
  const tdir = join(dir, 'traces');
  if (!existsSync(tdir)) return [];
  return readdirSync(tdir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => ({ label: f, href: relative(dir, join(tdir, f)) }));
}

/** results.json: top-level fields one per line, then one run (and one aggregate) per line. */
export function resultsJson(rs: ResultSet): string {
  const lines = ['{'];
  const entries = Object.entries(rs);
  entries.forEach(([k, v], i) => {
    const comma = i < entries.length - 1 ? ',' : '';
    if (Array.isArray(v)) {
      lines.push(` ${JSON.stringify(k)}: [`);
      v.forEach((item, j) => lines.push(`  ${JSON.stringify(item)}${j < v.length - 1 ? ',' : ''}`));
      lines.push(` ]${comma}`);
    } else {
      lines.push(` ${JSON.stringify(k)}: ${JSON.stringify(v)}${comma}`);
    }
  });
  lines.push('}');
  return `${lines.join('\n')}\n`;
}

/** A sweep's output directory holds its manifest (commands/sweep.ts). */
export const MANIFEST_FILE = 'sweep.json';

/**
 * What an output directory already holds: a sweep (its manifest or journal), a result set, or
 * nothing. Each command decides from this whether writing there would replace another command's
 * results; it refuses (bad input) rather than overwrite them silently.
 */
export interface DirContents {
  /** sweep.json or journal.jsonl: the directory of a sweep or of one shard. */
  sweep: boolean;
  /** results.json as read; 'unreadable' when it is not a cvmsim result set. */
  results: ResultSet | 'unreadable' | null;
}

export function dirContents(dir: string): DirContents {
  const sweep = existsSync(join(dir, MANIFEST_FILE)) || existsSync(join(dir, JOURNAL_FILE));
  if (!existsSync(join(dir, RESULTS_FILE))) return { sweep, results: null };
  try {
    return { sweep, results: readResultSet(dir, dir) };
  } catch {
    return { sweep, results: 'unreadable' };
  }
}

/** What the directory holds, in words, for a refusal. */
export function describeContents(c: DirContents): string {
  if (c.sweep) return 'a sweep (sweep.json, journal.jsonl)';
  if (c.results === 'unreadable') return `a ${RESULTS_FILE} that is not a cvmsim result set`;
  if (c.results === null) return 'nothing of cvmsim';
  const rs = c.results;
  if (rs.sweep === null) return `the results of a suite (${rs.runs.length} runs)`;
  const what = rs.shard === null ? `the results of ${describeSweep(rs.sweep)}` : `shard ${rs.shard.index}/${rs.shard.count} of ${describeSweep(rs.sweep)}`;
  return `${what} (${rs.runs.length} run(s))`;
}

/**
 * Refuses `dir` for `field` unless it is empty of results or `mayReplace` accepts what it holds.
 * `command` names who would overwrite (in the message).
 */
export function refuseOtherResults(dir: string, field: string, command: string, mayReplace: (c: DirContents) => boolean): void {
  const c = dirContents(dir);
  if (!c.sweep && c.results === null) return;
  if (mayReplace(c)) return;
  throw new UsageError(field, `${dir} holds ${describeContents(c)}; \`${command}\` would replace its ${RESULTS_FILE}: choose another directory (or delete it)`);
}

/** A single run's result set, as `cvmsim run --out` writes it. */
export function isSingleRun(rs: ResultSet): boolean {
  return rs.sweep !== null && rs.sweep.grid.length === 0 && rs.sweep.seeds.length === 1 && rs.runs.length === 1 && rs.shard === null;
}
