import type { ResultSet } from './results.ts';
import { describeSweep, summarize, type Table } from './tables.ts';

/** summary.md: the result set's tables in Markdown, for a pull request or a terminal. */
export function renderSummaryMarkdown(rs: ResultSet): string {
  const out: string[] = [];
  out.push(`# cvmsim results: ${describeSweep(rs.sweep)}`);
  if (rs.shard !== null) out.push('', `Shard ${rs.shard.index}/${rs.shard.count} only: combine the shards with \`cvmsim merge\`.`);
  out.push('', `${rs.runs.length} runs; mean ± half-width of the 95% confidence interval over seeds (Student t).`);
  for (const s of summarize(rs)) {
    out.push('', `## ${s.experiment}`, '', `> ${s.question}`, '');
    if (s.fixed !== '') out.push(`Parameters: ${s.fixed}`, '');
    out.push(markdownTable(s.table));
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
