import type { Catalog } from '../catalog.ts';
import { EXTRA_EXPERIMENTS_ENV } from '../catalog.ts';
import type { Params } from '../experiment.ts';
import { defaultParams } from '../params.ts';

/**
 * The one command that reproduces a fuzzed configuration: `npx cvmsim run <experiment>` with a
 * --set for each parameter off its default and the seed (or check-determinism, for a
 * divergence). An experiment that is not in the registry needs the same
 * CVMSIM_EXTRA_EXPERIMENTS as the fuzzer had, so the command carries it.
 */
export function reproduceCommand(catalog: Catalog, experiment: string, params: Params, seed: number, command: 'run' | 'check-determinism' = 'run'): string {
  const exp = catalog.get(experiment);
  const defaults = defaultParams(exp);
  const sets = Object.keys(params)
    .filter((k) => params[k] !== defaults[k])
    .map((k) => `--set ${shellWord(`${k}=${String(params[k])}`)}`);
  const env = catalog.registered.includes(exp) ? '' : `${EXTRA_EXPERIMENTS_ENV}=${shellWord(process.env[EXTRA_EXPERIMENTS_ENV] ?? '')} `;
  return [`${env}npx cvmsim ${command} ${exp.name}`, ...sets, `--seed ${seed}`].join(' ');
}

function shellWord(s: string): string {
  return /^[A-Za-z0-9_.,:/=+@%-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}
