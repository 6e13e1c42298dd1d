import type { Catalog } from '../catalog.ts';
import { EXTRA_EXPERIMENTS_ENV } from '../catalog.ts';
import type { ParamSpec, Params } from '../experiment.ts';
import { defaultParams, presetDefaults } from '../params.ts';

/**
 * The one command that reproduces a fuzzed configuration: `npx cvmsim run <experiment>` with a
 * --set for each parameter off its default and the seed (or check-determinism, for a
 * divergence). An experiment that is not in the registry needs the same
 * CVMSIM_EXTRA_EXPERIMENTS as the fuzzer had, so the command carries it.
 */
export function reproduceCommand(catalog: Catalog, experiment: string, params: Params, seed: number, command: 'run' | 'check-determinism' = 'run'): string {
  const exp = catalog.get(experiment);
  // A preset parameter (kernel_config) is compared with its default, every other one with the
  // value the preset gives it: the command sets exactly what differs.
  const defaults = defaultParams(exp);
  const implied = presetDefaults(exp, params);
  const sets = Object.keys(params)
    .filter((k) => params[k] !== (isPreset(exp.params[k]) ? defaults[k] : implied[k]))
    .map((k) => `--set ${shellWord(`${k}=${String(params[k])}`)}`);
  const env = catalog.registered.includes(exp) ? '' : `${EXTRA_EXPERIMENTS_ENV}=${shellWord(process.env[EXTRA_EXPERIMENTS_ENV] ?? '')} `;
  return [`${env}npx cvmsim ${command} ${exp.name}`, ...sets, `--seed ${seed}`].join(' ');
}

function isPreset(spec: ParamSpec | undefined): boolean {
  return spec?.type === 'enum' && spec.presets !== undefined;
}

function shellWord(s: string): string {
  return /^[A-Za-z0-9_.,:/=+@%-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}
