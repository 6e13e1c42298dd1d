import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Experiment } from './experiment.ts';
import { parseParamValue } from './params.ts';
import { didYouMean } from './suggest.ts';
import { UsageError } from './usage_error.ts';

/**
 * The experiments a command can name: the registry (experiments/registry.ts), plus, for tests
 * only, the modules listed in CVMSIM_EXTRA_EXPERIMENTS (comma-separated paths to modules that
 * export `experiments: Experiment[]`). Worker threads inherit the variable, so they see the same
 * catalog. The default suite (`npm start`) uses the registry alone.
 */
export const EXTRA_EXPERIMENTS_ENV = 'CVMSIM_EXTRA_EXPERIMENTS';

export class Catalog {
  constructor(
    readonly all: readonly Experiment[],
    /** The registry's experiments alone (the default suite, regress without names). */
    readonly registered: readonly Experiment[],
  ) {}

  names(): string[] {
    return this.all.map((e) => e.name);
  }

  find(name: string): Experiment | undefined {
    return this.all.find((e) => e.name === name);
  }

  /** The experiment, or a UsageError listing the known names and the closest one. */
  get(name: string, field = 'experiment'): Experiment {
    const e = this.find(name);
    if (e !== undefined) return e;
    const names = this.names();
    const known = names.length === 0 ? 'no experiment is registered' : `known: ${names.join(', ')}`;
    throw new UsageError(field, `unknown experiment '${name}'${didYouMean(name, names)}; ${known}`);
  }
}

let cached: Catalog | undefined;

export async function loadCatalog(): Promise<Catalog> {
  if (cached !== undefined) return cached;
  // Loaded on demand: the models behind the registry are most of the CLI's startup time.
  const { experiments: registered } = await import('./registry.ts');
  const all: Experiment[] = [...registered];
  const extra = process.env[EXTRA_EXPERIMENTS_ENV];
  if (extra !== undefined && extra !== '') {
    for (const path of extra.split(',')) {
      const url = pathToFileURL(isAbsolute(path) ? path : resolve(path)).href;
      const mod = (await import(url)) as { experiments?: Experiment[] };
      if (!Array.isArray(mod.experiments)) throw new Error(`${EXTRA_EXPERIMENTS_ENV}: ${path} exports no experiments array`);
      all.push(...mod.experiments);
    }
  }
  for (const e of all) checkDefinition(e);
  const seen = new Set<string>();
  for (const e of all) {
    if (seen.has(e.name)) throw new Error(`experiment '${e.name}' is registered twice`);
    seen.add(e.name);
  }
  cached = new Catalog(all, registered);
  return cached;
}

/** A definition whose own defaults break its schema is a programming error: fail loudly at load. */
function checkDefinition(e: Experiment): void {
  if (!/^[a-z][a-z0-9-]*$/.test(e.name)) throw new Error(`experiment name '${e.name}' must be lower-case words joined by '-'`);
  for (const [k, spec] of Object.entries(e.params)) {
    try {
      parseParamValue(`${e.name} param ${k} default`, spec, spec.default);
    } catch (err) {
      throw new Error(`experiment ${e.name}: ${(err as Error).message}`);
    }
  }
  for (const [k, m] of Object.entries(e.metrics)) {
    const t = m.tolerance;
    if (t.kind !== 'exact' && !(t.value >= 0)) throw new Error(`experiment ${e.name}: metric ${k} has a negative tolerance`);
  }
}
