import type { Sim, Yield } from '../../sim/index.ts';

/**
 * Time a vCPU spends outside the guest (a VM exit, host work on its behalf): the vCPU keeps its
 * CPU (no guest thread can run on it) and the time is accounted as stall, not guest work.
 * Returns the command to yield.
 */
export function stallFor(sim: Sim, ns: number, label = 'vm-exit'): Yield {
  const ev = sim.event(label);
  sim.schedule(ns, () => ev.succeed(), label);
  return sim.stall(ev);
}
