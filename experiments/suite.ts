import type { ParamValue } from './experiment.ts';

/**
 * What `npm start` (`cvmsim suite`) runs besides every registered experiment at its defaults with
 * seed 1: one small sweep, chosen to draw the headline chart of Q1 (boot time against memory
 * size, one line per acceptance strategy) in seconds.
 */
export interface SuiteSweep {
  experiment: string;
  grid: { param: string; values: ParamValue[] }[];
  seeds: number;
}

export const SUITE_SWEEP: SuiteSweep = {
  experiment: 'accept-boot',
  grid: [
    { param: 'memory_gib', values: [4, 8, 16, 32] },
    { param: 'accept', values: ['eager', 'lazy', 'background'] },
  ],
  seeds: 2,
};
