/** Number formatting shared by the console, summary.md, CSV-free outputs and chart ticks. */

/** Up to 4 significant digits, no exponent for everyday magnitudes: 0.001234, 12.35, 123457. */
export function fmt(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (Number.isInteger(v) && a < 1e9) return String(v);
  if (a >= 1e9 || a < 1e-4) return v.toExponential(3).replace(/\.?0+e/, 'e');
  const digits = Math.max(0, 3 - Math.floor(Math.log10(a)));
  return v.toFixed(digits).replace(/(\.\d*?)0+$/, '$1').replace(/\.$/, '');
}

/** Compact tick label: 1500 -> 1.5k, 2e6 -> 2M, 0.25 -> 0.25. */
export function fmtTick(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e12) return `${trim(v / 1e12)}T`;
  if (a >= 1e9) return `${trim(v / 1e9)}G`;
  if (a >= 1e6) return `${trim(v / 1e6)}M`;
  if (a >= 1e4) return `${trim(v / 1e3)}k`;
  return trim(v);
}

function trim(v: number): string {
  return String(Number(v.toPrecision(4)));
}

/** "name=value, name=value" for legends and tables. */
export function paramLabel(params: Record<string, unknown>, names: string[]): string {
  return names.map((n) => `${n}=${String(params[n])}`).join(', ');
}

/** A plain-text table with columns padded to their widest cell. */
export function textTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (c ?? '').padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}
