/**
 * Statistics over seeds: mean, sample standard deviation and the 95% confidence interval of the
 * mean from Student's t distribution with n-1 degrees of freedom. The t quantile is computed
 * (bisection on the t CDF through the regularized incomplete beta function), not tabulated, so
 * any number of seeds gets the exact interval.
 */

export interface MetricAggregate {
  n: number;
  mean: number;
  /** Sample standard deviation (n-1); 0 for a single seed. */
  sd: number;
  /** Half-width of the 95% confidence interval of the mean; null below two seeds. */
  ci95: number | null;
  min: number;
  max: number;
}

export function aggregate(values: readonly number[]): MetricAggregate {
  const n = values.length;
  if (n === 0) throw new Error('aggregate of no values');
  let sum = 0;
  let min = Infinity;
  let max = -Infinity;
  for (const v of values) {
    sum += v;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const mean = sum / n;
  if (n === 1) return { n, mean, sd: 0, ci95: null, min, max };
  let ss = 0;
  for (const v of values) ss += (v - mean) ** 2;
  // Seeds that all gave the same value can still leave rounding residue in the sum of squares
  // (3.907 ± 6.165e-16): a spread below 1e-9 of the mean is no spread.
  const sd = noise(Math.sqrt(ss / (n - 1)), mean);
  return { n, mean, sd, ci95: noise((studentTQuantile(0.975, n - 1) * sd) / Math.sqrt(n), mean), min, max };
}

/** Relative size below which a spread is floating-point residue, not variation between seeds. */
export const SPREAD_NOISE = 1e-9;

function noise(spread: number, mean: number): number {
  return spread < SPREAD_NOISE * Math.abs(mean) ? 0 : spread;
}

/** ln Gamma(x) for x > 0 (Lanczos, g = 7, 9 coefficients: about 15 significant digits). */
export function logGamma(x: number): number {
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
    12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  const z = x - 1;
  let a = c[0]!;
  const t = z + 7.5;
  for (let i = 1; i < 9; i++) a += c[i]! / (z + i);
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

/** The regularized incomplete beta function I_x(a, b), by its continued fraction (modified Lentz). */
export function incompleteBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  // The continued fraction converges fast for x < (a+1)/(a+b+2); use the symmetry otherwise.
  if (x > (a + 1) / (a + b + 2)) return 1 - incompleteBeta(1 - x, b, a);
  const front = Math.exp(a * Math.log(x) + b * Math.log(1 - x) - (logGamma(a) + logGamma(b) - logGamma(a + b))) / a;
  const tiny = 1e-300;
  let f = 1;
  let c = 1;
  let d = 0;
  for (let i = 0; i <= 400; i++) {
    const m = i >> 1;
    let num: number;
    if (i === 0) num = 1;
    else if (i % 2 === 0) num = (m * (b - m) * x) / ((a + 2 * m - 1) * (a + 2 * m));
    else num = -((a + m) * (a + b + m) * x) / ((a + 2 * m) * (a + 2 * m + 1));
    d = 1 + num * d;
    if (Math.abs(d) < tiny) d = tiny;
    d = 1 / d;
    c = 1 + num / c;
    if (Math.abs(c) < tiny) c = tiny;
    const cd = c * d;
    f *= cd;
    if (Math.abs(1 - cd) < 1e-15) break;
  }
  return front * (f - 1);
}

/** P(T <= t) for Student's t with df degrees of freedom. */
export function studentTCdf(t: number, df: number): number {
  const tail = 0.5 * incompleteBeta(df / (df + t * t), df / 2, 0.5);
  return t >= 0 ? 1 - tail : tail;
}

/** The p-quantile of Student's t with df degrees of freedom (0.5 < p < 1). */
export function studentTQuantile(p: number, df: number): number {
  if (!(p > 0.5 && p < 1)) throw new Error(`studentTQuantile: p must be in (0.5, 1), got ${p}`);
  let lo = 0;
  let hi = 1;
  while (studentTCdf(hi, df) < p) hi *= 2;
  for (let i = 0; i < 200 && hi - lo > 1e-12 * hi; i++) {
    const mid = (lo + hi) / 2;
    if (studentTCdf(mid, df) < p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}
