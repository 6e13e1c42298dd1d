import { one } from '../args.ts';
import { err, out, type Command } from '../command.ts';
import { checkDeterminism } from '../../sim/index.ts';
import { parseSeed } from '../plan.ts';
import { experimentAndParams, PARAM_OPTIONS } from './run.ts';

export const checkDeterminismCommand: Command = {
  name: 'check-determinism',
  summary: 'Run an experiment twice with one seed and compare every event. Prints "deterministic <fingerprint>", or the first event where the two runs diverge (exit 1).',
  positional: { name: '<experiment>', min: 1, max: 1 },
  options: {
    seed: { value: true, arg: 'N', help: 'root seed (default 1)' },
    ...PARAM_OPTIONS,
  },
  details: 'A divergence means the model reads state it should not: wall time, Math.random, iteration over\nunordered state, or module-level state left over from the first run.',
  async run(args) {
    const { exp, params } = await experimentAndParams(args);
    const seed = parseSeed(one(args, 'seed'));
    const r = checkDeterminism(seed, (sim) => {
      exp.run(params, sim);
    });
    if (r.deterministic) {
      out(`deterministic ${r.fingerprints[0]} (${exp.name}, seed ${seed}, ${r.events[0]} events, twice)`);
      return 0;
    }
    if (r.divergence !== undefined) {
      err(`diverged at event #${r.divergence.index} (${exp.name}, seed ${seed})\n  first run:  ${r.divergence.first}\n  second run: ${r.divergence.second}`);
    } else {
      err(`diverged: fingerprints ${r.fingerprints[0]} and ${r.fingerprints[1]} differ (${r.events[0]} and ${r.events[1]} events)`);
    }
    return 1;
  },
};
