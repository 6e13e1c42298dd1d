import type { Sim } from '../../sim/index.ts';

/** A scenario log of (what, virtual time), as SimPy's tests read. */
export function scenarioLog(sim: Sim) {
  const log: [string, number][] = [];
  return { log, note: (what: string) => log.push([what, sim.now]) };
}
