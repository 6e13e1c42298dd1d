import { fmtTick } from './format.ts';

/**
 * A line chart as standalone SVG markup: axes with ticks and labels (units included by the
 * caller), one coloured line per series, optional points and 95% CI bars, and a legend. Linear
 * or log10 scales. Classes (chart, axis, axis-label, series, point, ci, legend-entry) let a test
 * find what was drawn.
 */
export interface ChartPoint {
  x: number;
  y: number;
  /** 95% CI bounds of y, drawn as a bar. */
  lo?: number;
  hi?: number;
}

export interface ChartSeries {
  label: string;
  points: ChartPoint[];
}

export interface ChartSpec {
  id: string;
  title: string;
  xLabel: string;
  yLabel: string;
  series: ChartSeries[];
  xLog?: boolean;
  /** Tick at exactly these x values (a sweep's grid values) instead of round numbers. */
  xTicks?: number[];
  /** Fixed y range, e.g. [0, 1] for a CDF. */
  yRange?: [number, number];
  /** Draw a marker at every point (few points per series). */
  markers?: boolean;
  /** Draw as steps (a CDF). */
  step?: boolean;
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f', '#bcbd22'];
const DASHES = ['', '6 3', '2 3', '8 3 2 3'];

const W = 720;
const PLOT_H = 300;
const M = { left: 78, right: 24, top: 36, bottom: 52 };
const LEGEND_ROW = 18;

export function seriesColor(i: number): string {
  return PALETTE[i % PALETTE.length]!;
}

export function renderChart(spec: ChartSpec): string {
  const pts = spec.series.flatMap((s) => s.points);
  const xLog = spec.xLog === true && pts.every((p) => p.x > 0);
  const xs = pts.map((p) => p.x);
  const ys = pts.flatMap((p) => [p.y, p.lo ?? p.y, p.hi ?? p.y]);
  const [x0, x1] = padRange(Math.min(...xs), Math.max(...xs), xLog);
  const [y0, y1] = spec.yRange ?? padRange(Math.min(0, ...ys), Math.max(...ys), false);
  const plotW = W - M.left - M.right;
  const legendCols = 2;
  const legendRows = Math.ceil(spec.series.length / legendCols);
  const H = M.top + PLOT_H + M.bottom + legendRows * LEGEND_ROW + 8;
  const sx = (x: number) => M.left + (xLog ? (Math.log10(x) - Math.log10(x0)) / (Math.log10(x1) - Math.log10(x0)) : (x - x0) / (x1 - x0)) * plotW;
  const sy = (y: number) => M.top + PLOT_H - ((y - y0) / (y1 - y0)) * PLOT_H;
  const out: string[] = [];
  out.push(`<svg class="chart" id="${esc(spec.id)}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" data-series="${spec.series.length}">`);
  out.push(`<title>${esc(spec.title)}</title>`);
  out.push(`<text class="chart-title" x="${W / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${esc(spec.title)}</text>`);

  // Axes, grid lines and ticks.
  const xt = spec.xTicks !== undefined ? spec.xTicks.filter((t) => t >= x0 && t <= x1) : xLog ? logTicks(x0, x1) : niceTicks(x0, x1);
  const yt = niceTicks(y0, y1);
  out.push(`<g class="axis x-axis" font-size="11">`);
  out.push(`<line x1="${M.left}" y1="${M.top + PLOT_H}" x2="${W - M.right}" y2="${M.top + PLOT_H}" stroke="#000"/>`);
  for (const t of xt) {
    const x = r(sx(t));
    out.push(`<line class="grid" x1="${x}" y1="${M.top}" x2="${x}" y2="${M.top + PLOT_H}" stroke="#eee"/>`);
    out.push(`<line x1="${x}" y1="${M.top + PLOT_H}" x2="${x}" y2="${M.top + PLOT_H + 5}" stroke="#000"/>`);
    out.push(`<text class="tick" x="${x}" y="${M.top + PLOT_H + 18}" text-anchor="middle">${esc(fmtTick(t))}</text>`);
  }
  out.push(`<text class="axis-label" x="${M.left + plotW / 2}" y="${M.top + PLOT_H + 40}" text-anchor="middle" font-size="12">${esc(spec.xLabel)}${xLog ? ' (log scale)' : ''}</text>`);
  out.push(`</g>`);
  out.push(`<g class="axis y-axis" font-size="11">`);
  out.push(`<line x1="${M.left}" y1="${M.top}" x2="${M.left}" y2="${M.top + PLOT_H}" stroke="#000"/>`);
  for (const t of yt) {
    const y = r(sy(t));
    out.push(`<line class="grid" x1="${M.left}" y1="${y}" x2="${W - M.right}" y2="${y}" stroke="#eee"/>`);
    out.push(`<line x1="${M.left - 5}" y1="${y}" x2="${M.left}" y2="${y}" stroke="#000"/>`);
    out.push(`<text class="tick" x="${M.left - 8}" y="${y + 4}" text-anchor="end">${esc(fmtTick(t))}</text>`);
  }
  const yMid = M.top + PLOT_H / 2;
  out.push(`<text class="axis-label" x="16" y="${yMid}" text-anchor="middle" font-size="12" transform="rotate(-90 16 ${yMid})">${esc(spec.yLabel)}</text>`);
  out.push(`</g>`);

  // Series.
  out.push(`<g class="plot">`);
  spec.series.forEach((s, i) => {
    const color = seriesColor(i);
    const dash = DASHES[i % DASHES.length]!; // colour and dash both differ, so coinciding lines stay visible
    const sorted = [...s.points].sort((a, b) => a.x - b.x);
    const coords = sorted.map((p) => [r(sx(p.x)), r(sy(p.y))] as const);
    let d = '';
    coords.forEach(([x, y], j) => {
      if (j === 0) d += `M${x},${y}`;
      else if (spec.step === true) d += `H${x}V${y}`;
      else d += `L${x},${y}`;
    });
    out.push(`<g class="series-group" data-label="${esc(s.label)}">`);
    if (coords.length > 1) {
      out.push(`<path class="series" d="${d}" fill="none" stroke="${color}" stroke-width="2"${dash === '' ? '' : ` stroke-dasharray="${dash}"`}/>`);
    }
    for (const p of sorted) {
      if (p.lo !== undefined && p.hi !== undefined && p.hi > p.lo) {
        const x = r(sx(p.x));
        out.push(`<path class="ci" d="M${x},${r(sy(p.lo))}V${r(sy(p.hi))}M${x - 4},${r(sy(p.lo))}H${x + 4}M${x - 4},${r(sy(p.hi))}H${x + 4}" stroke="${color}" stroke-width="1"/>`);
      }
    }
    if (spec.markers === true || coords.length === 1) {
      sorted.forEach((p, j) => {
        const [x, y] = coords[j]!;
        const ci = p.lo !== undefined && p.hi !== undefined ? ` (95% CI ${fmtTick(p.lo)}..${fmtTick(p.hi)})` : '';
        out.push(`<circle class="point" cx="${x}" cy="${y}" r="3.5" fill="${color}"><title>${esc(`${s.label}: ${fmtTick(p.x)} -> ${fmtTick(p.y)}${ci}`)}</title></circle>`);
      });
    }
    out.push(`</g>`);
  });
  out.push(`</g>`);

  // Legend, below the x axis label.
  const ly = M.top + PLOT_H + M.bottom;
  out.push(`<g class="legend" font-size="11">`);
  spec.series.forEach((s, i) => {
    const col = i % legendCols;
    const row = Math.floor(i / legendCols);
    const x = M.left + col * (plotW / legendCols);
    const y = ly + row * LEGEND_ROW;
    const dash = DASHES[i % DASHES.length]!; // colour and dash both differ, so coinciding lines stay visible
    out.push(`<g class="legend-entry"><line x1="${x}" y1="${y}" x2="${x + 22}" y2="${y}" stroke="${seriesColor(i)}" stroke-width="3"${dash === '' ? '' : ` stroke-dasharray="${dash}"`}/><text x="${x + 28}" y="${y + 4}">${esc(s.label)}</text></g>`);
  });
  out.push(`</g>`);
  out.push(`</svg>`);
  return out.join('\n');
}

function r(v: number): number {
  return Math.round(v * 10) / 10;
}

function padRange(lo: number, hi: number, log: boolean): [number, number] {
  if (log) return lo === hi ? [lo / 2, hi * 2] : [lo / 1.15, hi * 1.15];
  if (lo === hi) return lo === 0 ? [0, 1] : lo > 0 ? [0, hi * 1.1] : [lo * 1.1, 0];
  const pad = (hi - lo) * 0.04;
  return [lo < 0 || lo - pad >= 0 ? lo - pad : 0, hi + pad];
}

/** Round ticks (1, 2, 5 x 10^k) covering [lo, hi], about 6 of them. */
export function niceTicks(lo: number, hi: number, target = 6): number[] {
  const span = hi - lo;
  if (!(span > 0)) return [lo];
  const raw = span / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const ticks: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

/** Powers of ten within [lo, hi], with 2 and 5 between them when the range is under 3 decades. */
export function logTicks(lo: number, hi: number): number[] {
  const ticks: number[] = [];
  const few = Math.log10(hi / lo) < 3;
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const m of few ? [1, 2, 5] : [1]) {
      const t = m * 10 ** e;
      if (t >= lo && t <= hi) ticks.push(Number(t.toPrecision(12)));
    }
  }
  return ticks;
}

export function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}
