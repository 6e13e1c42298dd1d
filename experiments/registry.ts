import type { Experiment } from './experiment.ts';

/** Every registered experiment, in the order `cvmsim list` shows them. */
export const experiments: Experiment[] = [];

export function findExperiment(name: string): Experiment | undefined {
  return experiments.find((e) => e.name === name);
}
