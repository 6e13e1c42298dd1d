import { chartGroups, tailBars } from './charts.ts';
import type { ResultSet } from './results.ts';
import { CHART_SCRIPT, esc, renderChart } from './svg_chart.ts';
import { decisionTables, describeSweep, metricMatrices, outcomeTables, summarize, type DecisionTable, type MetricMatrix, type OutcomeTable } from './tables.ts';

/**
 * report.html: one self-contained page (inline CSS, SVG and one small script; no network), the
 * same bytes for the same results. First the decision summary: per policy, the metrics the
 * questions ask about side by side, the best per column marked and named, with the latency tail
 * as bars on a log axis. Then per experiment its metrics (as rows, parameter sets as columns),
 * small multiples of each metric against the swept parameters, and its curves. Hovering a point
 * or bar shows its value and parameters; clicking a legend entry hides or shows its series.
 * `links` lists files beside it (traces) by relative path.
 */
export function renderReportHtml(rs: ResultSet, links: { label: string; href: string }[] = []): string {
  const summaries = summarize(rs);
  const groups = chartGroups(rs);
  const decisions = decisionTables(rs);
  const outcomes = outcomeTables(rs);
  const out: string[] = [];
  out.push('<!DOCTYPE html>', '<html lang="en">', '<head>', '<meta charset="utf-8">');
  out.push(`<title>cvmsim report: ${esc(describeSweep(rs.sweep))}</title>`);
  out.push(`<style>
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1040px; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.num { text-align: right; white-space: nowrap; }
td.best { background: #e6f4e6; font-weight: bold; }
tr.winners td { background: #fafafa; font-style: italic; }
.table-wrap { overflow-x: auto; }
blockquote { color: #555; border-left: 3px solid #ccc; margin: 0.5em 0; padding-left: 1em; }
.chart { display: block; margin: 1em 0 2em; }
.multiples { display: flex; flex-wrap: wrap; gap: 4px 12px; }
.multiples .chart { margin: 0.5em 0; }
.note { color: #555; font-size: 13px; }
.failed { color: #b00; }
code, pre { font-size: 12px; }
#tip { position: absolute; background: #222; color: #fff; padding: 3px 7px; border-radius: 3px; font-size: 12px; pointer-events: none; max-width: 420px; }
</style>`);
  out.push('</head>', '<body>');
  out.push(`<h1>cvmsim report</h1>`, `<p>${esc(describeSweep(rs.sweep))}: ${rs.runs.length} runs. Values are means ± the half-width of the 95% confidence interval over seeds (Student t). Hover a point or bar for its value and parameters; click a legend entry to hide or show its series.</p>`);
  if (rs.shard !== null) out.push(`<p><strong>Shard ${rs.shard.index}/${rs.shard.count} only</strong>: combine the shards with <code>cvmsim merge</code>.</p>`);
  if (decisions.length > 0) {
    out.push('<h2 id="decision">Decision summary</h2>');
    out.push('<p>Each policy side by side; lower is better in every column, and the best value of each column is marked ★ (green). The last row names the best policy per column.</p>');
    for (const d of decisions) {
      out.push(...decisionHtml(d));
      const bars = tailBars(rs, d.experiment);
      if (bars !== null) out.push(renderChart(bars));
    }
  }
  if (outcomes.length > 0) {
    if (decisions.length === 0) out.push('<h2 id="decision">Decision summary</h2>');
    for (const o of outcomes) out.push(...outcomeHtml(o));
  }
  if (links.length > 0) {
    out.push('<h2>Traces</h2>', '<p>Open a <code>.jaeger.json</code> file in the Jaeger UI (Search, then "Upload"): one lane per vCPU, contention events on the ops that met it.</p>', '<ul>');
    for (const l of links) out.push(`<li><a href="${esc(l.href)}">${esc(l.label)}</a></li>`);
    out.push('</ul>');
  }
  for (const s of summaries) {
    out.push(`<h2 id="${esc(s.experiment)}">${esc(s.experiment)}</h2>`, `<blockquote>${esc(s.question)}</blockquote>`);
    if (s.fixed !== '') out.push(`<p>Parameters: <code>${esc(s.fixed)}</code></p>`);
    if (s.vertical) out.push(plainTable(s.table.header, s.table.rows, s.firstMetricColumn));
    else for (const m of metricMatrices(rs, s.experiment)) out.push(matrixHtml(m));
    if (s.seedNote !== null) out.push(`<p class="note seeds">${esc(s.seedNote)}</p>`);
    if (s.failed.length > 0) {
      out.push(`<h3 class="failed">Failed runs (${s.failed.length})</h3>`, '<ul class="failed">');
      for (const f of s.failed) out.push(`<li>${esc(f.label)}<pre>${esc(f.error)}</pre></li>`);
      out.push('</ul>');
    }
    for (const g of groups.filter((x) => x.experiment === s.experiment)) {
      out.push(`<h3>${esc(g.heading)}</h3>`);
      for (const n of g.notes) out.push(`<p class="note">${esc(n)}</p>`);
      const small = g.charts.filter((c) => c.small === true);
      if (small.length > 0) out.push('<div class="multiples">', ...small.map(renderChart), '</div>');
      for (const c of g.charts.filter((x) => x.small !== true)) out.push(renderChart(c));
    }
  }
  out.push('<div id="tip" hidden></div>', `<script>\n${CHART_SCRIPT}\n</script>`);
  out.push('</body>', '</html>');
  return `${out.join('\n')}\n`;
}

function decisionHtml(d: DecisionTable): string[] {
  const out: string[] = [];
  out.push(`<h3>${esc(d.experiment)}: by ${esc(d.policy)}</h3>`, `<blockquote>${esc(d.question)}</blockquote>`);
  if (d.fixed !== '') out.push(`<p class="note">Parameters: <code>${esc(d.fixed)}</code></p>`);
  const head = [...d.groupBy, d.policy, ...d.columns.map((c) => (c.unit === '' ? c.label : `${c.label} (${c.unit})`))];
  const rows: string[] = [];
  for (const g of d.groups) {
    for (const r of g.rows) {
      const group = d.groupBy.length === 0 ? [] : [`<td>${esc(g.label)}</td>`];
      const cells = r.cells.map((c) => `<td class="num${c.best ? ' best' : ''}">${c.best ? '★ ' : ''}${esc(c.text)}</td>`);
      rows.push(`<tr>${group.join('')}<td>${esc(r.policy)}</td>${cells.join('')}</tr>`);
    }
    const group = d.groupBy.length === 0 ? [] : [`<td>${esc(g.label)}</td>`];
    rows.push(`<tr class="winners">${group.join('')}<td>best</td>${g.best.map((b) => `<td>${esc(b)}</td>`).join('')}</tr>`);
  }
  out.push(`<div class="table-wrap"><table class="decision" data-experiment="${esc(d.experiment)}">`, `<tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr>`, ...rows, '</table></div>');
  return out;
}

function outcomeHtml(o: OutcomeTable): string[] {
  const cls = (c: string) => (c === 'safe' ? ' class="best"' : c.includes('unsafe') ? ' class="failed"' : '');
  return [
    `<h3>${esc(o.experiment)}: outcome by ${esc(o.policy)} and scenario</h3>`, `<blockquote>${esc(o.question)}</blockquote>`,
    `<p class="note">Each cell: safe (no TD page outside the TDMRs, no convertible memory refused), unsafe (a TD got memory without PAMT), refused safe memory (convertible memory refused), init failed (the module is in error). Columns: ${esc(o.scenarioParams.join(', '))}.</p>`,
    `<div class="table-wrap"><table class="outcome" data-experiment="${esc(o.experiment)}">`,
    `<tr><th>${esc(o.policy)}</th>${o.columns.map((c) => `<th>${esc(c)}</th>`).join('')}</tr>`,
    ...o.rows.map((r) => `<tr><td>${esc(r.policy)}</td>${r.cells.map((c) => `<td${cls(c)}>${esc(c)}</td>`).join('')}</tr>`),
    '</table></div>',
  ];
}

function matrixHtml(m: MetricMatrix): string {
  // One parameter per line in the headings keeps the columns within the page.
  const head = `<tr><th>metric</th><th>unit</th>${m.sets.map((s) => `<th>${s.split(', ').map(esc).join('<br>')}</th>`).join('')}</tr>`;
  const rows = m.rows.map((r) => `<tr><td title="${esc(r.description)}">${esc(r.metric)}</td><td>${esc(r.unit)}</td>${r.cells.map((c) => `<td class="num">${esc(c)}</td>`).join('')}</tr>`);
  return `<div class="table-wrap"><table class="metrics">\n${head}\n${rows.join('\n')}\n</table></div>`;
}

function plainTable(header: string[], rows: string[][], firstNumeric: number): string {
  const head = `<tr>${header.map((h) => `<th>${esc(h)}</th>`).join('')}</tr>`;
  const body = rows.map((r) => `<tr>${r.map((c, i) => `<td${i === firstNumeric ? ' class="num"' : ''}>${esc(c)}</td>`).join('')}</tr>`);
  return `<div class="table-wrap"><table class="metrics">\n${head}\n${body.join('\n')}\n</table></div>`;
}
