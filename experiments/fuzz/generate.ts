import { Rng, streamSeed } from '../../sim/index.ts';
import type { Experiment, ParamSpec, ParamValue, Params } from '../experiment.ts';
import { defaultParams, sortedParams } from '../params.ts';
import { FREE_NUMBERS, hintedCost } from './cost_hints.ts';

/**
 * Random valid configurations for the fuzzer, drawn from nothing but each experiment's
 * parameter specs (type, default, min, max, integer, enum values), so that a new experiment is
 * fuzzed as soon as it is registered.
 *
 * Values are biased to the edges: a number is its min or its max more often than not, sometimes
 * its default or one step inside an edge, otherwise drawn across its range (log-uniformly when
 * the range spans decades); every enum value and both booleans are equally likely.
 *
 * Size is capped. A number above its default multiplies the work by roughly value/default
 * (memory_gib=4096 is 1024 times the default 4), so each configuration gets a budget of
 * `budget` doublings above the defaults (default 6, a factor of 64) for all its numbers
 * together: their product of value/default is at most 2^budget. Enum values known to multiply
 * the work (cost_hints.ts: fidelity=per-page, psc=msr) are charged first; what is left may be
 * negative, down to -4, which holds the numbers below their defaults (per-page: memory_gib at
 * a sixteenth of its default, 1 GiB at most for the 4 and 8 GiB defaults). One
 * number per configuration, the lead, may take its whole range, up to its max even past the
 * budget, when no hint was charged; the others share what the lead left, below their defaults
 * when the lead went past the budget. So 4 TiB guests and 512 vCPUs both occur, but not
 * together: with memory_gib=4096 (10 doublings) the other numbers stay at a sixteenth of their
 * defaults or below (vcpus 1), and with vcpus=512 (7 doublings) memory_gib <= 4 / 2.
 * A number whose default is 0 counts its doublings from 1. A negative --budget makes every
 * configuration small (the lead aside): -3 holds the numbers to an eighth of their defaults.
 */
export interface FuzzConfig {
  /** Position in the fuzz sequence: configuration i depends on (root seed, i) alone. */
  index: number;
  experiment: string;
  /** Complete, valid, sorted parameters. */
  params: Params;
  seed: number;
}

export const DEFAULT_BUDGET = 6;

/**
 * How far below the defaults the budget may push the numbers (doublings). Lower would make
 * rates tiny, and a tiny rate makes a run longer, not shorter.
 */
const LOWEST_LEFT = -4;

/** How many draws may be refused by the experiment's own check before the slot is given up. */
const ATTEMPTS = 20;

export type NumberSpec = Extract<ParamSpec, { type: 'number' }>;

/** Values the user fixed (`fuzz --set k=v`), by experiment: they are not drawn, and their size counts. */
export type Pinned = ReadonlyMap<string, Params>;

/** Configuration `index` of the sequence of `rootSeed`, or null when every draw was refused. */
export function drawConfig(experiments: readonly Experiment[], rootSeed: number, index: number, budget = DEFAULT_BUDGET, pinned: Pinned = new Map()): FuzzConfig | null {
  // Experiments take turns, so each gets the same share of the runs.
  const exp = experiments[index % experiments.length]!;
  const name = `fuzz.config.${index}`;
  const prng = new Rng(name, streamSeed(rootSeed, name));
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const params = drawParams(exp, prng, budget, pinned.get(exp.name));
    if (exp.check?.(params) !== undefined) continue;
    // Seeds from 1 to 2^31: short to type, and any of them a valid root seed.
    return { index, experiment: exp.name, params, seed: 1 + prng.int(2 ** 31) };
  }
  return null;
}

export function drawParams(exp: Experiment, prng: Rng, budget = DEFAULT_BUDGET, pinned: Params = {}): Params {
  const p: Params = { ...defaultParams(exp), ...pinned };
  const keys = prng.shuffle(Object.keys(exp.params).filter((k) => !Object.hasOwn(pinned, k)));
  const numbers = keys.filter((k) => exp.params[k]!.type === 'number');
  // Fixed values and then enums and booleans first: a costly value shrinks the budget the numbers share.
  let left = budget;
  for (const [k, v] of Object.entries(pinned)) {
    const spec = exp.params[k]!;
    left -= spec.type === 'number' ? numberCost(k, spec, v as number) : hintedCost(k, v);
  }
  for (const k of keys) {
    const spec = exp.params[k]!;
    if (spec.type === 'number') continue;
    p[k] = drawOther(spec, prng);
    left -= hintedCost(k, p[k]);
  }
  // The lead: one number with its whole range (or, one time in numbers+1, none).
  const lead = prng.int(numbers.length + 1) < numbers.length ? numbers[prng.int(numbers.length)] : undefined;
  for (const k of lead === undefined ? numbers : [lead, ...numbers.filter((n) => n !== lead)]) {
    const spec = exp.params[k] as NumberSpec;
    // A host size keeps its default ("enough for the VMs") three times in four: drawn small, it
    // mostly makes the experiment refuse the configuration, and the sizes that matter go unseen.
    if (FREE_NUMBERS.has(k) && k !== lead && prng.int(4) !== 0) {
      p[k] = spec.default;
      continue;
    }
    const whole = k === lead && left >= budget;
    const v = drawNumber(spec, prng, whole ? upper(spec) : ref(spec) * 2 ** Math.max(LOWEST_LEFT, left));
    p[k] = v;
    left -= numberCost(k, spec, v);
  }
  return sortedParams(p);
}

/** What a number spends of the budget: its doublings, or nothing for a host size (FREE_NUMBERS). */
export function numberCost(k: string, spec: NumberSpec, v: number): number {
  return FREE_NUMBERS.has(k) ? 0 : doublings(spec, v);
}

function drawOther(spec: Exclude<ParamSpec, NumberSpec>, prng: Rng): ParamValue {
  return spec.type === 'enum' ? prng.choice(spec.values) : prng.int(2) === 1;
}

/** The value a number's growth is measured from: its default, or 1 when the default is 0 or less. */
function ref(spec: NumberSpec): number {
  return spec.default > 0 ? spec.default : 1;
}

function upper(spec: NumberSpec): number {
  return spec.max ?? Math.max(spec.default, 1) * 1024;
}

function lower(spec: NumberSpec): number {
  return spec.min ?? Math.min(spec.default, 0);
}

/** log2 of how far above its reference a value is (0 at or below it). */
export function doublings(spec: NumberSpec, v: number): number {
  return v > ref(spec) ? Math.log2(v / ref(spec)) : 0;
}

/**
 * A number in [min, hi] (hi <= max), edges first: min 30%, hi 25%, the default 10% (when it is
 * below hi), one step inside an edge 10%, otherwise across the range.
 */
export function drawNumber(spec: NumberSpec, prng: Rng, hi: number): number {
  const lo = lower(spec);
  const top = Math.max(lo, Math.min(hi, upper(spec)));
  const r = prng.int(100);
  let v: number;
  if (r < 30) v = lo;
  else if (r < 55) v = top;
  else if (r < 65 && spec.default <= top) v = spec.default;
  else if (r < 75) v = prng.int(2) === 0 ? lo + step(spec, lo, top) : top - step(spec, lo, top);
  else v = across(lo, top, prng);
  return tidy(spec, v, lo, top);
}

/** One step inside the range: 1 for integers, a thousandth of the range otherwise. */
function step(spec: NumberSpec, lo: number, hi: number): number {
  return spec.integer === true ? 1 : (hi - lo) / 1000;
}

/** Log-uniform when the range spans more than two decades (from its smallest positive value), else uniform. */
function across(lo: number, hi: number, prng: Rng): number {
  const bottom = lo > 0 ? lo : Math.min(1, hi);
  if (hi / bottom > 100) return bottom * (hi / bottom) ** prng.random();
  return lo + (hi - lo) * prng.random();
}

/** Integers rounded, other numbers kept to 4 significant digits (short --set values), all within [lo, hi]. */
function tidy(spec: NumberSpec, v: number, lo: number, hi: number): number {
  if (spec.integer === true) return Math.min(Math.floor(hi), Math.max(Math.ceil(lo), Math.round(v)));
  const x = Number(v.toPrecision(4));
  if (x > hi) return hi === upper(spec) ? hi : fourDigitsDown(hi);
  return x < lo ? lo : x;
}

/** The largest number of 4 significant digits at or below v (v > 0): 1.220703125e-4 -> 1.22e-4. */
function fourDigitsDown(v: number): number {
  const unit = 10 ** (Math.floor(Math.log10(v)) - 3);
  return Number((Math.floor(v / unit) * unit).toPrecision(4));
}
