import type { ResultSet } from './results.ts';
import { decisionTables, describeSweep, outcomeTables, summarize, type Table } from './tables.ts';

/** summary.md: the result set's tables in Markdown, for a pull request or a terminal. */
export function renderSummaryMarkdown(rs: ResultSet): string {
  const out: string[] = [];
  out.push(`# cvmsim results: ${describeSweep(rs.sweep)}`);
  if (rs.shard !== null) out.push('', `Shard ${rs.shard.index}/${rs.shard.count} only: combine the shards with \`cvmsim merge\`.`);
  out.push('', `${rs.runs.length} runs; mean ± half-width of the 95% confidence interval over seeds (Student t).`);
  const decisions = decisionTables(rs);
  if (decisions.length > 0) out.push('', '## Decision summary', '', 'Lower is better in every column; ★ marks the best value of each column, and the last row names the best policy.');
  for (const d of decisions) {
    out.push('', `### ${d.experiment}: by ${d.policy}`, '');
    if (d.fixed !== '') out.push(`Parameters: ${d.fixed}`, '');
    const header = [...d.groupBy, d.policy, ...d.columns.map((c) => (c.unit === '' ? c.label : `${c.label} (${c.unit})`))];
    const rows: string[][] = [];
    for (const g of d.groups) {
      const group = d.groupBy.length === 0 ? [] : [g.label];
      for (const r of g.rows) rows.push([...group, r.policy, ...r.cells.map((c) => (c.best ? `★ ${c.text}` : c.text))]);
      rows.push([...group, '*best*', ...g.best]);
    }
    out.push(markdownTable({ header, rows }));
  }
  for (const o of outcomeTables(rs)) {
    out.push('', `### ${o.experiment}: outcome by ${o.policy} and scenario (${o.scenarioParams.join(', ')})`, '');
    out.push(markdownTable({ header: [o.policy, ...o.columns], rows: o.rows.map((r) => [r.policy, ...r.cells]) }));
  }
  for (const s of summarize(rs)) {
    out.push('', `## ${s.experiment}`, '', `> ${s.question}`, '');
    if (s.fixed !== '') out.push(`Parameters: ${s.fixed}`, '');
    out.push(markdownTable(s.table));
    if (s.seedNote !== null) out.push('', `*${s.seedNote}*`);
    if (s.failed.length > 0) {
      out.push('', `### Failed runs (${s.failed.length})`, '');
      for (const f of s.failed) out.push(`- ${f.label}: \`${f.error.split('\n')[0]}\``);
    }
  }
  return `${out.join('\n')}\n`;
}

function markdownTable(t: Table): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  const lines = [`| ${t.header.map(esc).join(' | ')} |`, `|${t.header.map(() => '---').join('|')}|`];
  for (const r of t.rows) lines.push(`| ${r.map(esc).join(' | ')} |`);
  return lines.join('\n');
}
