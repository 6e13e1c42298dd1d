import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { writeFileAtomic } from './atomic_write.ts';
import { renderCsv } from './csv.ts';
import { renderReportHtml } from './report_html.ts';
import { RESULTS_FILE, type ResultSet } from './results.ts';
import { renderSummaryMarkdown } from './summary_md.ts';

/**
 * Writes a result set's four outputs into dir, each to a temporary file then renamed:
 * results.json, results.csv, summary.md, report.html. Returns their paths.
 */
export interface OutputPaths {
  results: string;
  csv: string;
  summary: string;
  report: string;
}

export function writeOutputs(dir: string, rs: ResultSet): OutputPaths {
  mkdirSync(dir, { recursive: true });
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
