import type { ParamValue } from './experiment.ts';

/**
 * What `npm start` (`cvmsim suite`) runs besides every registered experiment at its defaults with
 * seed 1: small sweeps, chosen to answer Q1 in a few minutes.
 *  - accept-boot over memory size and acceptance strategy: the headline chart of Q1 (boot time
 *    against memory size, one line per strategy);
 *  - accept-latency over the acceptance strategy: what the application sees (the allocation
 *    tail) and what acceptance costs in CPU and memory traffic, eager, lazy and background side
 *    by side: the report's decision summary.
 * Every sweep's runs are numbered in a fixed order, so the summary's rows come out the same.
 */
export interface SuiteSweep {
  experiment: string;
  grid: { param: string; values: ParamValue[] }[];
  seeds: number;
}

export const SUITE_SWEEPS: readonly SuiteSweep[] = [
  {
    experiment: 'accept-boot',
    grid: [
      { param: 'memory_gib', values: [4, 8, 16, 32] },
      { param: 'accept', values: ['eager', 'lazy', 'background'] },
    ],
    seeds: 2,
  },
  {
    experiment: 'accept-latency',
    grid: [{ param: 'accept', values: ['eager', 'lazy', 'background'] }],
    seeds: 1,
  },
];

/** The first sweep (the headline chart), for callers that know one sweep. */
export const SUITE_SWEEP: SuiteSweep = SUITE_SWEEPS[0]!;
