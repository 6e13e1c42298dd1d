import type { Experiment } from './experiment.ts';
import { acceptBoot } from './accept_boot.ts';
import { acceptThroughput } from './accept_throughput.ts';
import { acceptLatency } from './accept_latency.ts';
import { multiVmBoot } from './multi_vm_boot.ts';
import { pamtMemory } from './pamt_memory.ts';
import { pamtContention } from './pamt_contention.ts';
import { convert } from './convert.ts';
import { pamtChurn } from './pamt_churn.ts';
import { hotplugInit } from './hotplug_init.ts';

/** Every registered experiment, in the order `cvmsim list` shows them. */
export const experiments: Experiment[] = [
  acceptBoot,
  acceptThroughput,
  acceptLatency,
  multiVmBoot,
  pamtMemory,
  pamtContention,
  convert,
  pamtChurn,
  hotplugInit,
];

export function findExperiment(name: string): Experiment | undefined {
  return experiments.find((e) => e.name === name);
}
