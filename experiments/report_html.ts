import { chartGroups } from './charts.ts';
import type { ResultSet } from './results.ts';
import { esc, renderChart } from './svg_chart.ts';
import { describeSweep, summarize, type Table } from './tables.ts';

/**
 * report.html: one self-contained page (inline CSS and SVG, no script, no network) with the
 * summary tables and every chart of the result set. `links` lists files beside it (traces) by
 * relative path.
 */
export function renderReportHtml(rs: ResultSet, links: { label: string; href: string }[] = []): string {
  const summaries = summarize(rs);
  const groups = chartGroups(rs);
  const out: string[] = [];
  out.push('<!DOCTYPE html>', '<html lang="en">', '<head>', '<meta charset="utf-8">');
  out.push(`<title>cvmsim report: ${esc(describeSweep(rs.sweep))}</title>`);
  out.push(`<style>
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1000px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
blockquote { color: #555; border-left: 3px solid #ccc; margin: 0.5em 0; padding-left: 1em; }
.chart { display: block; margin: 1em 0 2em; }
.failed { color: #b00; }
code, pre { font-size: 12px; }
</style>`);
  out.push('</head>', '<body>');
  out.push(`<h1>cvmsim report</h1>`, `<p>${esc(describeSweep(rs.sweep))}: ${rs.runs.length} runs. Values are means ± the half-width of the 95% confidence interval over seeds (Student t).</p>`);
  if (rs.shard !== null) out.push(`<p><strong>Shard ${rs.shard.index}/${rs.shard.count} only</strong>: combine the shards with <code>cvmsim merge</code>.</p>`);
  if (links.length > 0) {
    out.push('<h2>Traces</h2>', '<p>Open a <code>.jaeger.json</code> file in the Jaeger UI (Search, then "Upload").</p>', '<ul>');
    for (const l of links) out.push(`<li><a href="${esc(l.href)}">${esc(l.label)}</a></li>`);
    out.push('</ul>');
  }
  for (const s of summaries) {
    out.push(`<h2 id="${esc(s.experiment)}">${esc(s.experiment)}</h2>`, `<blockquote>${esc(s.question)}</blockquote>`);
    if (s.fixed !== '') out.push(`<p>Parameters: <code>${esc(s.fixed)}</code></p>`);
    out.push(htmlTable(s.table));
    if (s.failed.length > 0) {
      out.push(`<h3 class="failed">Failed runs (${s.failed.length})</h3>`, '<ul class="failed">');
      for (const f of s.failed) out.push(`<li>${esc(f.label)}<pre>${esc(f.error)}</pre></li>`);
      out.push('</ul>');
    }
    for (const g of groups.filter((x) => x.experiment === s.experiment)) {
      out.push(`<h3>${esc(g.heading)}</h3>`);
      for (const n of g.notes) out.push(`<p class="note">${esc(n)}</p>`);
      for (const c of g.charts) out.push(renderChart(c));
    }
  }
  out.push('</body>', '</html>');
  return `${out.join('\n')}\n`;
}

function htmlTable(t: Table): string {
  const head = `<tr>${t.header.map((h) => `<th>${esc(h)}</th>`).join('')}</tr>`;
  const rows = t.rows.map((r) => `<tr>${r.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`);
  return `<table>\n${head}\n${rows.join('\n')}\n</table>`;
}
