import { fmtTick } from './format.ts';

/**
 * Charts as standalone SVG markup, written by hand so that the same results give the same bytes
 * and the page needs nothing but itself: line charts (linear or log10 axes, optional points, 95%
 * CI bars, steps for distributions) and grouped bar charts (categories on x). Every point and
 * bar carries its value and parameters in `data-tip` (shown on hover by the page's script, and
 * in a <title> without it); every legend entry toggles its series. Classes (chart, axis,
 * axis-label, series, point, bar, ci, legend-entry) let a test find what was drawn.
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
  /** 'line' (default) or 'bars': x values are then category indexes into `categories`. */
  kind?: 'line' | 'bars';
  categories?: string[];
  xLog?: boolean;
  yLog?: boolean;
  /** Tick at exactly these x values (a sweep's grid values) instead of round numbers. */
  xTicks?: number[];
  /** Fixed y range, e.g. [0, 1] for a CDF. */
  yRange?: [number, number];
  /** Draw a marker at every point (few points per series). */
  markers?: boolean;
  /** Draw as steps (a distribution). */
  step?: boolean;
  /** One of many small charts side by side (small multiples). */
  small?: boolean;
  /** Units for the hover text of x and y values. */
  xUnit?: string;
  yUnit?: string;
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f', '#bcbd22'];
const DASHES = ['', '6 3', '2 3', '8 3 2 3'];
const LEGEND_ROW = 18;
/** Hover targets on a line without markers: at most this many per series. */
const HOVER_POINTS = 60;

interface Frame {
  W: number;
  plotH: number;
  M: { left: number; right: number; top: number; bottom: number };
  legendCols: number;
  font: number;
}

function frameOf(spec: ChartSpec): Frame {
  return spec.small === true
    ? { W: 330, plotH: 150, M: { left: 58, right: 12, top: 30, bottom: 44 }, legendCols: 1, font: 10 }
    : { W: 720, plotH: 300, M: { left: 78, right: 24, top: 36, bottom: 52 }, legendCols: 2, font: 11 };
}

export function seriesColor(i: number): string {
  return PALETTE[i % PALETTE.length]!;
}

export function renderChart(spec: ChartSpec): string {
  return spec.kind === 'bars' ? renderBars(spec) : renderLines(spec);
}

function tipValue(v: number, unit: string | undefined): string {
  return unit === undefined || unit === '' ? fmtTick(v) : `${fmtTick(v)} ${unit}`;
}

function open(spec: ChartSpec, f: Frame, H: number): string[] {
  const out: string[] = [];
  out.push(`<svg class="chart${spec.small === true ? ' small' : ''}" id="${esc(spec.id)}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${f.W} ${H}" width="${f.W}" height="${H}" role="img" data-series="${spec.series.length}">`);
  out.push(`<title>${esc(spec.title)}</title>`);
  const titleSize = spec.small === true ? 12 : 14;
  out.push(`<text class="chart-title" x="${f.W / 2}" y="${spec.small === true ? 16 : 20}" text-anchor="middle" font-size="${titleSize}" font-weight="bold">${esc(spec.title)}</text>`);
  return out;
}

function legend(spec: ChartSpec, f: Frame, swatch: (i: number, x: number, y: number) => string): string[] {
  const out: string[] = [];
  const plotW = f.W - f.M.left - f.M.right;
  const ly = f.M.top + f.plotH + f.M.bottom;
  out.push(`<g class="legend" font-size="${f.font}">`);
  spec.series.forEach((s, i) => {
    const x = f.M.left + (i % f.legendCols) * (plotW / f.legendCols);
    const y = ly + Math.floor(i / f.legendCols) * LEGEND_ROW;
    out.push(`<g class="legend-entry" data-series="${i}" style="cursor:pointer">${swatch(i, x, y)}<text x="${x + 28}" y="${y + 4}">${esc(s.label)}</text><title>click to hide or show</title></g>`);
  });
  out.push(`</g>`);
  return out;
}

function yAxis(out: string[], f: Frame, ticks: number[], sy: (y: number) => number, label: string, log: boolean): void {
  const { M, W, plotH } = f;
  out.push(`<g class="axis y-axis" font-size="${f.font}">`);
  out.push(`<line x1="${M.left}" y1="${M.top}" x2="${M.left}" y2="${M.top + plotH}" stroke="#000"/>`);
  for (const t of ticks) {
    const y = r(sy(t));
    out.push(`<line class="grid" x1="${M.left}" y1="${y}" x2="${W - M.right}" y2="${y}" stroke="#eee"/>`);
    out.push(`<line x1="${M.left - 5}" y1="${y}" x2="${M.left}" y2="${y}" stroke="#000"/>`);
    out.push(`<text class="tick" x="${M.left - 8}" y="${y + 4}" text-anchor="end">${esc(fmtTick(t))}</text>`);
  }
  const yMid = M.top + plotH / 2;
  const lx = f.font + 3;
  out.push(`<text class="axis-label" x="${lx}" y="${yMid}" text-anchor="middle" font-size="${f.font + 1}" transform="rotate(-90 ${lx} ${yMid})">${esc(label)}${log ? ' (log)' : ''}</text>`);
  out.push(`</g>`);
}

function renderLines(spec: ChartSpec): string {
  const f = frameOf(spec);
  const { M, W, plotH } = f;
  const pts = spec.series.flatMap((s) => s.points);
  const xLog = spec.xLog === true && pts.every((p) => p.x > 0);
  const yLog = spec.yLog === true && pts.every((p) => p.y > 0);
  const xs = pts.map((p) => p.x);
  const ys = pts.flatMap((p) => [p.y, p.lo ?? p.y, p.hi ?? p.y]).filter((y) => !yLog || y > 0);
  const [x0, x1] = padRange(Math.min(...xs), Math.max(...xs), xLog);
  const [y0, y1] = spec.yRange ?? (yLog ? padRange(Math.min(...ys), Math.max(...ys), true) : padRange(Math.min(0, ...ys), Math.max(...ys), false));
  const plotW = W - M.left - M.right;
  const legendRows = Math.ceil(spec.series.length / f.legendCols);
  const H = M.top + plotH + M.bottom + legendRows * LEGEND_ROW + 8;
  const scale = (v: number, a: number, b: number, log: boolean) => (log ? (Math.log10(v) - Math.log10(a)) / (Math.log10(b) - Math.log10(a)) : (v - a) / (b - a));
  const sx = (x: number) => M.left + scale(x, x0, x1, xLog) * plotW;
  const sy = (y: number) => M.top + plotH - scale(Math.max(y, yLog ? y0 : -Infinity), y0, y1, yLog) * plotH;
  const out = open(spec, f, H);

  // Axes, grid lines and ticks.
  const xt = spec.xTicks !== undefined ? spec.xTicks.filter((t) => t >= x0 && t <= x1) : xLog ? logTicks(x0, x1) : niceTicks(x0, x1, spec.small === true ? 4 : 6);
  const yt = yLog ? logTicks(y0, y1) : niceTicks(y0, y1, spec.small === true ? 4 : 6);
  out.push(`<g class="axis x-axis" font-size="${f.font}">`);
  out.push(`<line x1="${M.left}" y1="${M.top + plotH}" x2="${W - M.right}" y2="${M.top + plotH}" stroke="#000"/>`);
  for (const t of xt) {
    const x = r(sx(t));
    out.push(`<line class="grid" x1="${x}" y1="${M.top}" x2="${x}" y2="${M.top + plotH}" stroke="#eee"/>`);
    out.push(`<line x1="${x}" y1="${M.top + plotH}" x2="${x}" y2="${M.top + plotH + 5}" stroke="#000"/>`);
    out.push(`<text class="tick" x="${x}" y="${M.top + plotH + 16}" text-anchor="middle">${esc(fmtTick(t))}</text>`);
  }
  out.push(`<text class="axis-label" x="${M.left + plotW / 2}" y="${M.top + plotH + (spec.small === true ? 32 : 40)}" text-anchor="middle" font-size="${f.font + 1}">${esc(spec.xLabel)}${xLog ? ' (log)' : ''}</text>`);
  out.push(`</g>`);
  yAxis(out, f, yt, sy, spec.yLabel, yLog);

  // Series.
  out.push(`<g class="plot">`);
  spec.series.forEach((s, i) => {
    const color = seriesColor(i);
    const dash = DASHES[i % DASHES.length]!; // colour and dash both differ, so crossing lines stay apart
    const sorted = [...s.points].sort((a, b) => a.x - b.x);
    const coords = sorted.map((p) => [r(sx(p.x)), r(sy(p.y))] as const);
    let d = '';
    coords.forEach(([x, y], j) => {
      if (j === 0) d += `M${x},${y}`;
      else if (spec.step === true) d += `H${x}V${y}`;
      else d += `L${x},${y}`;
    });
    out.push(`<g class="series-group" data-series="${i}" data-label="${esc(s.label)}">`);
    if (coords.length > 1) {
      out.push(`<path class="series" d="${d}" fill="none" stroke="${color}" stroke-width="2" pointer-events="none"${dash === '' ? '' : ` stroke-dasharray="${dash}"`}/>`);
    }
    for (const p of sorted) {
      if (p.lo !== undefined && p.hi !== undefined && p.hi > p.lo) {
        const x = r(sx(p.x));
        out.push(`<path class="ci" d="M${x},${r(sy(p.lo))}V${r(sy(p.hi))}M${x - 4},${r(sy(p.lo))}H${x + 4}M${x - 4},${r(sy(p.hi))}H${x + 4}" stroke="${color}" stroke-width="1" pointer-events="none"/>`);
      }
    }
    const tip = (p: ChartPoint) => {
      const ci = p.lo !== undefined && p.hi !== undefined ? ` (95% CI ${fmtTick(p.lo)}..${fmtTick(p.hi)})` : '';
      return `${s.label}: ${spec.xLabel} ${tipValue(p.x, spec.xUnit)} -> ${tipValue(p.y, spec.yUnit)}${ci}`;
    };
    if (spec.markers === true || coords.length === 1) {
      sorted.forEach((p, j) => {
        const [x, y] = coords[j]!;
        out.push(`<circle class="point" cx="${x}" cy="${y}" r="3.5" fill="${color}" data-tip="${esc(tip(p))}"><title>${esc(tip(p))}</title></circle>`);
      });
    } else {
      // Invisible hover targets along the line, evenly spread over its points.
      const step = Math.max(1, Math.ceil(sorted.length / HOVER_POINTS));
      sorted.forEach((p, j) => {
        if (j % step !== 0 && j !== sorted.length - 1) return;
        const [x, y] = coords[j]!;
        out.push(`<circle class="hover-point" cx="${x}" cy="${y}" r="4" fill="${color}" fill-opacity="0" data-tip="${esc(tip(p))}"/>`);
      });
    }
    out.push(`</g>`);
  });
  out.push(`</g>`);
  out.push(...legend(spec, f, (i, x, y) => {
    const dash = DASHES[i % DASHES.length]!;
    return `<line x1="${x}" y1="${y}" x2="${x + 22}" y2="${y}" stroke="${seriesColor(i)}" stroke-width="3"${dash === '' ? '' : ` stroke-dasharray="${dash}"`}/>`;
  }));
  out.push(`</svg>`);
  return out.join('\n');
}

/** Grouped bars: one group per category, one bar per series; log y when asked (all values > 0). */
function renderBars(spec: ChartSpec): string {
  const f = frameOf(spec);
  const { M, W, plotH } = f;
  const categories = spec.categories ?? [];
  const values = spec.series.flatMap((s) => s.points.map((p) => p.y));
  const yLog = spec.yLog === true && values.every((v) => v > 0);
  // A log axis for bars starts at the decade below the smallest bar, so every bar shows.
  const [y0, y1] = yLog ? [10 ** Math.floor(Math.log10(Math.min(...values))), padRange(Math.min(...values), Math.max(...values), true)[1]] : padRange(0, Math.max(0, ...values), false);
  const plotW = W - M.left - M.right;
  const legendRows = Math.ceil(spec.series.length / f.legendCols);
  const H = M.top + plotH + M.bottom + legendRows * LEGEND_ROW + 8;
  const sy = (y: number) => M.top + plotH - (yLog ? (Math.log10(y) - Math.log10(y0)) / (Math.log10(y1) - Math.log10(y0)) : (y - y0) / (y1 - y0)) * plotH;
  const groupW = plotW / Math.max(1, categories.length);
  const barW = Math.max(1, (groupW * 0.8) / Math.max(1, spec.series.length));
  const out = open(spec, f, H);
  out.push(`<g class="axis x-axis" font-size="${f.font}">`);
  out.push(`<line x1="${M.left}" y1="${M.top + plotH}" x2="${W - M.right}" y2="${M.top + plotH}" stroke="#000"/>`);
  const every = Math.max(1, Math.ceil(categories.length / (spec.small === true ? 8 : 16)));
  categories.forEach((c, i) => {
    if (i % every !== 0) return;
    out.push(`<text class="tick" x="${r(M.left + groupW * (i + 0.5))}" y="${M.top + plotH + 16}" text-anchor="middle">${esc(c)}</text>`);
  });
  out.push(`<text class="axis-label" x="${M.left + plotW / 2}" y="${M.top + plotH + (spec.small === true ? 32 : 40)}" text-anchor="middle" font-size="${f.font + 1}">${esc(spec.xLabel)}</text>`);
  out.push(`</g>`);
  yAxis(out, f, yLog ? logTicks(y0, y1) : niceTicks(y0, y1, spec.small === true ? 4 : 6), sy, spec.yLabel, yLog);
  out.push(`<g class="plot">`);
  const base = yLog ? M.top + plotH : sy(0);
  spec.series.forEach((s, i) => {
    out.push(`<g class="series-group" data-series="${i}" data-label="${esc(s.label)}">`);
    for (const p of s.points) {
      const x = r(M.left + groupW * p.x + groupW * 0.1 + barW * i);
      const y = r(sy(p.y));
      const tip = `${s.label}, ${categories[p.x] ?? p.x}: ${tipValue(p.y, spec.yUnit)}`;
      out.push(`<rect class="bar" x="${x}" y="${Math.min(y, r(base))}" width="${r(barW)}" height="${r(Math.abs(base - y))}" fill="${seriesColor(i)}" data-tip="${esc(tip)}"><title>${esc(tip)}</title></rect>`);
    }
    out.push(`</g>`);
  });
  out.push(`</g>`);
  out.push(...legend(spec, f, (i, x, y) => `<rect x="${x}" y="${y - 5}" width="22" height="10" fill="${seriesColor(i)}"/>`));
  out.push(`</svg>`);
  return out.join('\n');
}

/**
 * The page's only script: a tooltip that shows an element's data-tip on hover, and legend
 * entries that hide or show their series. A fixed string, so the page stays the same bytes.
 */
export const CHART_SCRIPT = `(function () {
  var tip = document.getElementById('tip');
  document.addEventListener('mouseover', function (e) {
    var t = e.target.closest ? e.target.closest('[data-tip]') : null;
    if (!t) { tip.hidden = true; return; }
    tip.textContent = t.getAttribute('data-tip');
    tip.hidden = false;
  });
  document.addEventListener('mousemove', function (e) {
    tip.style.left = (e.pageX + 14) + 'px';
    tip.style.top = (e.pageY + 14) + 'px';
  });
  document.addEventListener('click', function (e) {
    var entry = e.target.closest ? e.target.closest('.legend-entry') : null;
    if (!entry) return;
    var svg = entry.closest('svg');
    var group = svg.querySelector('.series-group[data-series="' + entry.getAttribute('data-series') + '"]');
    var hide = group.style.display !== 'none';
    group.style.display = hide ? 'none' : '';
    entry.style.opacity = hide ? '0.35' : '1';
  });
})();`;

function r(v: number): number {
  return Math.round(v * 10) / 10;
}

function padRange(lo: number, hi: number, log: boolean): [number, number] {
  if (log) return lo === hi ? [lo / 2, hi * 2] : [lo / 1.15, hi * 1.15];
  if (lo === hi) return lo === 0 ? [0, 1] : lo > 0 ? [0, hi * 1.1] : [lo * 1.1, 0];
  const pad = (hi - lo) * 0.04;
  return [lo < 0 || lo - pad >= 0 ? lo - pad : 0, hi + pad];
}

/** Round ticks (1, 2, 5 x 10^k) covering [lo, hi], about `target` of them. */
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
