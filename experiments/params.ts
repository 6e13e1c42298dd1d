import { readFileSync } from 'node:fs';
import type { Experiment, ParamSpec, ParamValue, Params } from './experiment.ts';
import { didYouMean } from './suggest.ts';
import { UsageError } from './usage_error.ts';

/**
 * Typed parameters: parsing `--set k=v` strings and config-file values, checking them against
 * each experiment's ParamSpec (type, integer, range, allowed values), and resolving defaults <
 * config file < --set into one complete, sorted parameter object.
 */

const NUMBER = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

/** What a parameter accepts, in words: "an integer in [1, 4096] GiB", "one of eager|lazy". */
export function describeAllowed(spec: ParamSpec): string {
  switch (spec.type) {
    case 'number': {
      const kind = spec.integer === true ? 'an integer' : 'a number';
      const lo = spec.min ?? -Infinity;
      const hi = spec.max ?? Infinity;
      const range = lo === -Infinity && hi === Infinity ? '' : lo === -Infinity ? ` <= ${hi}` : hi === Infinity ? ` >= ${lo}` : ` in [${lo}, ${hi}]`;
      return `${kind}${range}${spec.unit === '' ? '' : ` (${spec.unit})`}`;
    }
    case 'enum':
      return `one of ${spec.values.join('|')}`;
    case 'boolean':
      return 'true or false';
  }
}

function shown(raw: unknown): string {
  // JSON reads 1e309 as Infinity, which JSON.stringify would print as null.
  if (typeof raw === 'number' && !Number.isFinite(raw)) return Number.isNaN(raw) ? 'NaN' : `${raw > 0 ? '' : '-'}Infinity (a number beyond the largest double, about 1.8e308)`;
  return typeof raw === 'string' ? `'${raw}'` : JSON.stringify(raw) ?? String(raw);
}

/**
 * Checks one value for parameter `name`; `raw` is a string from the command line or a JSON value
 * from a config file. `field` names where it came from in the error.
 */
export function parseParamValue(field: string, spec: ParamSpec, raw: unknown): ParamValue {
  const bad = (extra = '') => new UsageError(field, `expected ${describeAllowed(spec)}, got ${shown(raw)}${extra}`);
  switch (spec.type) {
    case 'number': {
      let v: number;
      if (typeof raw === 'number') v = raw;
      else if (typeof raw === 'string' && NUMBER.test(raw.trim())) v = Number(raw.trim());
      else throw bad();
      if (!Number.isFinite(v)) throw bad();
      if (spec.integer === true && !Number.isInteger(v)) throw bad();
      if (spec.min !== undefined && v < spec.min) throw bad();
      if (spec.max !== undefined && v > spec.max) throw bad();
      return v;
    }
    case 'enum': {
      if (typeof raw !== 'string' || !spec.values.includes(raw)) {
        throw bad(typeof raw === 'string' ? didYouMean(raw, spec.values) : '');
      }
      return raw;
    }
    case 'boolean': {
      if (typeof raw === 'boolean') return raw;
      if (raw === 'true') return true;
      if (raw === 'false') return false;
      throw bad();
    }
  }
}

/** The spec of parameter `name`, or a UsageError suggesting the closest known name. */
export function paramSpec(exp: Experiment, name: string, field: string): ParamSpec {
  const spec = Object.hasOwn(exp.params, name) ? exp.params[name] : undefined;
  if (spec === undefined) {
    const known = Object.keys(exp.params);
    throw new UsageError(field, `unknown parameter '${name}' of ${exp.name}${didYouMean(name, known)}; parameters: ${known.join(', ')}`);
  }
  return spec;
}

/** Splits `k=v`; the value may contain '='. */
export function splitAssignment(flag: string, text: string): [string, string] {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new UsageError(flag, `expected key=value, got '${text}'`);
  return [text.slice(0, eq).trim(), text.slice(eq + 1)];
}

/** Reads a JSON config file: an object of parameter values. */
export function readConfigFile(path: string): Record<string, unknown> {
  const field = `--config ${path}`;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new UsageError(field, `cannot read the file (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new UsageError(field, `expected a JSON object of parameter values, got malformed JSON: ${jsonErrorWhere(text, e as Error)}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new UsageError(field, `expected a JSON object of parameter values, got ${Array.isArray(value) ? 'an array' : JSON.stringify(value)}`);
  }
  return value as Record<string, unknown>;
}

/** Parameters with keys in sorted order, so that equal parameters serialize to equal bytes. */
export function sortedParams(p: Params): Params {
  const out: Params = {};
  for (const k of Object.keys(p).sort()) out[k] = p[k]!;
  return out;
}

export function defaultParams(exp: Experiment): Params {
  const p: Params = {};
  for (const [k, spec] of Object.entries(exp.params)) p[k] = spec.default;
  return sortedParams(p);
}

export interface ParamSources {
  /** Values from --config, keyed by parameter name (file path for errors). */
  config?: { path: string; values: Record<string, unknown> };
  /** --set assignments in command-line order; later ones win. */
  sets?: string[];
}

/**
 * defaults < preset < config file < --set, every value checked; keys sorted. A preset parameter
 * (EnumParam.presets, e.g. kernel_config) gives the parameters it names the preset's values
 * unless they were given explicitly.
 */
export function resolveParams(exp: Experiment, sources: ParamSources): Params {
  const p = defaultParams(exp);
  const explicit = new Set<string>();
  if (sources.config !== undefined) {
    for (const [k, raw] of Object.entries(sources.config.values)) {
      const field = `--config ${sources.config.path}: ${k}`;
      p[k] = parseParamValue(field, paramSpec(exp, k, field), raw);
      explicit.add(k);
    }
  }
  for (const s of sources.sets ?? []) {
    const [k, raw] = splitAssignment('--set', s);
    const field = `--set ${k}`;
    p[k] = parseParamValue(field, paramSpec(exp, k, field), raw);
    explicit.add(k);
  }
  return sortedParams(applyPresets(exp, p, explicit));
}

/**
 * The presets of `p`'s preset parameters applied to every parameter they name that is not in
 * `explicit` (so an explicit value always wins). Returns `p`, changed in place.
 */
export function applyPresets(exp: Experiment, p: Params, explicit: ReadonlySet<string>): Params {
  for (const [name, spec] of Object.entries(exp.params)) {
    if (spec.type !== 'enum' || spec.presets === undefined) continue;
    const preset = spec.presets[String(p[name])];
    if (preset === undefined) continue;
    for (const [k, v] of Object.entries(preset)) {
      if (!Object.hasOwn(exp.params, k) || explicit.has(k)) continue;
      p[k] = v;
    }
  }
  return p;
}

/**
 * The values a run gets for the parameters it does not set, given the preset parameters' values
 * in `p`: the defaults with `p`'s presets applied (what `--set` of only the off-default values
 * reproduces).
 */
export function presetDefaults(exp: Experiment, p: Params): Params {
  const d = defaultParams(exp);
  const presetNames = new Set<string>();
  for (const [name, spec] of Object.entries(exp.params)) {
    if (spec.type === 'enum' && spec.presets !== undefined && Object.hasOwn(p, name)) {
      d[name] = p[name]!;
      presetNames.add(name);
    }
  }
  return applyPresets(exp, d, presetNames);
}

/** The experiment's own check of a combination of values (Experiment.check), as a UsageError. */
export function checkCombination(exp: Experiment, params: Params, field: string): void {
  const reason = exp.check?.(params);
  if (reason !== undefined) throw new UsageError(field, `${exp.name} refuses this combination: ${reason}`);
}

/** Checks a complete parameter object read back from a file (baselines): every key known, every value valid. */
export function checkParams(exp: Experiment, values: Record<string, unknown>, where: string): Params {
  const p = defaultParams(exp);
  for (const [k, raw] of Object.entries(values)) {
    const field = `${where}: ${k}`;
    p[k] = parseParamValue(field, paramSpec(exp, k, field), raw);
  }
  return sortedParams(applyPresets(exp, p, new Set(Object.keys(values))));
}

/** JSON.parse's message with the position turned into line and column. */
export function jsonErrorWhere(text: string, e: Error): string {
  const m = /at position (\d+)/.exec(e.message);
  if (m === null) return e.message;
  const pos = Number(m[1]);
  const before = text.slice(0, pos).split('\n');
  return `${e.message.replace(/ in JSON at position \d+.*$/, '')} at line ${before.length} column ${before[before.length - 1]!.length + 1}`;
}
