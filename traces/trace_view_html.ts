import type { JaegerFile, JaegerSpan } from './jaeger_json.ts';

/**
 * A static picture of a .jaeger.json in the layout of Jaeger's trace view (a tree of spans, each
 * a row with its service and a bar on the trace's time axis), for documentation screenshots where
 * no Jaeger UI is at hand. It is not the Jaeger UI and does not claim to be: the page says so.
 * Rows are the tree walked depth first, children by start time, at most `childrenShown` children
 * per span (the rest counted) and `rowsMax` rows; spans with BUSY or lock events get a marker.
 */
export interface TraceViewOptions {
  rowsMax?: number;
  childrenShown?: number;
}

const COLORS = ['#17b8be', '#f8dca1', '#b7885e', '#ffcb99', '#f89570', '#829ae3', '#e79fd5', '#1e96be', '#89dac2', '#266678'];

export function renderTraceViewHtml(file: JaegerFile, options: TraceViewOptions = {}): string {
  const trace = file.data[0]!;
  const rowsMax = options.rowsMax ?? 60;
  const childrenShown = options.childrenShown ?? 4;
  const service = (s: JaegerSpan) => trace.processes[s.processID]!.serviceName;
  const services = [...new Set(trace.spans.map(service))].sort();
  const color = (s: JaegerSpan) => COLORS[services.indexOf(service(s)) % COLORS.length]!;
  const children = new Map<string, JaegerSpan[]>();
  let root: JaegerSpan | undefined;
  for (const s of trace.spans) {
    const parent = s.references.find((r) => r.refType === 'CHILD_OF');
    if (parent === undefined) root = s;
    else {
      let list = children.get(parent.spanID);
      if (list === undefined) children.set(parent.spanID, (list = []));
      list.push(s);
    }
  }
  if (root === undefined) throw new Error('trace has no root span');
  const t0 = root.startTime;
  const span = Math.max(1, root.duration);
  const rows: string[] = [];
  const walk = (s: JaegerSpan, depth: number): void => {
    if (rows.length >= rowsMax) return;
    const kids = (children.get(s.spanID) ?? []).sort((a, b) => a.startTime - b.startTime || b.duration - a.duration);
    const busy = s.logs.filter((l) => /BUSY|lock_/.test(String(l.fields[0]?.value))).length;
    const left = ((s.startTime - t0) / span) * 100;
    const width = Math.max(0.15, (s.duration / span) * 100);
    const label = `${s.operationName}`;
    rows.push(`<div class="row"><div class="name" style="padding-left:${depth * 14 + 4}px"><span class="svc" style="border-color:${color(s)}">${esc(service(s))}</span> ${esc(label)}${kids.length > 0 ? ` <span class="n">(${kids.length})</span>` : ''}</div>`
      + `<div class="lane"><div class="bar" style="left:${left.toFixed(3)}%;width:${width.toFixed(3)}%;background:${color(s)}"></div>`
      + `<span class="dur" style="left:${Math.min(92, left + width).toFixed(3)}%">${fmtUs(s.duration)}${busy > 0 ? ` · ${busy} BUSY/lock events` : ''}</span></div></div>`);
    // The contended children first (they are what a reader looks for), then by start.
    const contended = (k: JaegerSpan) => k.logs.some((l) => /BUSY/.test(String(l.fields[0]?.value))) || k.tags.some((t) => t.key === 'lock.wait_ns');
    const shown = [...kids.filter(contended), ...kids.filter((k) => !contended(k))].slice(0, childrenShown).sort((a, b) => a.startTime - b.startTime);
    for (const k of shown) walk(k, depth + 1);
    if (kids.length > shown.length && rows.length < rowsMax) {
      rows.push(`<div class="row more"><div class="name" style="padding-left:${(depth + 1) * 14 + 4}px">… ${kids.length - shown.length} more under ${esc(s.operationName)}</div><div class="lane"></div></div>`);
    }
  };
  walk(root, 0);
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => `<span style="left:${f * 100}%">${fmtUs(span * f)}</span>`).join('');
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(root.operationName)}: trace view</title>
<style>
body { font-family: system-ui, sans-serif; margin: 0; font-size: 12px; color: #222; }
header { background: #f6f6f6; border-bottom: 1px solid #ddd; padding: 8px 12px; }
header h1 { font-size: 15px; margin: 0 0 4px; }
.warn { color: #a33; font-size: 11px; }
.ruler, .row { display: flex; border-bottom: 1px solid #eee; }
.name { width: 40%; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; padding: 3px 0; }
.lane { position: relative; flex: 1; }
.ruler .lane span { position: absolute; top: 3px; font-size: 11px; color: #666; }
.bar { position: absolute; top: 5px; height: 12px; border-radius: 2px; }
.dur { position: absolute; top: 4px; margin-left: 4px; font-size: 10px; color: #555; white-space: nowrap; }
.svc { border-left: 4px solid; padding-left: 4px; color: #666; }
.n { color: #999; }
.more { color: #888; font-style: italic; }
</style></head><body>
<header><h1>${esc(root.operationName)} · ${esc(trace.traceID)}</h1>
<div>Services: ${services.map((s) => esc(s)).join(', ')} · ${trace.spans.length} spans · duration ${fmtUs(span)}</div>
<div class="warn">A static rendering by cvmsim (traces/trace_view_html.ts) of the .jaeger.json file, laid out like Jaeger's trace view. It is not the Jaeger UI.</div></header>
<div class="ruler"><div class="name"><b>Service &amp; operation</b></div><div class="lane">${ticks}</div></div>
${rows.join('\n')}
</body></html>
`;
}

function fmtUs(us: number): string {
  if (us >= 1e6) return `${(us / 1e6).toFixed(2)} s`;
  if (us >= 1e3) return `${(us / 1e3).toFixed(2)} ms`;
  return `${us} µs`;
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}
