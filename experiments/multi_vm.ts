import { type MetricSpecs, type Sim } from '../sim/index.ts';
import { numberParam } from './experiment.ts';
import type { GuestConfig } from '../models/guest/kernel.ts';
import type { Host } from '../models/host/host.ts';
import { Vm } from '../models/vm/vm.ts';
import { acceptMetricSpecs, acceptMetrics } from './accept_boot.ts';
import { buildIdenticalVms, checkIdenticalVms, ownerMetricSpecs, type GuestParams, type HostParams, type VmParams } from './wiring.ts';

/**
 * Several identical guests on one host for the accept-* experiments (`vms`), as multi-vm-boot
 * builds them: VM n is `vmn`, its guest's metrics are `vmn.guest.<metric>`.
 */
export const vmsParam = numberParam({ default: 1, unit: 'VMs', description: 'identical guests on the host, started together (memory_gib and vcpus are each guest\'s); with more than one, the per-VM metrics are vmN.*', min: 1, max: 8, integer: true });

/** The guest-side acceptance metrics, per VM (`vm*.guest.<metric>`); a function, as accept_boot.ts imports this file. */
export function perVmAcceptSpecs(): MetricSpecs {
  return Object.fromEntries(Object.entries(acceptMetricSpecs)
    .filter(([name]) => !Object.hasOwn(ownerMetricSpecs, name))
    .map(([name, spec]) => [`vm*.guest.${name}`, spec]));
}

/** The host and `n` guests of the same configuration on it. */
export function buildVms(sim: Sim, p: HostParams & VmParams & GuestParams, n: number, overrides: Partial<GuestConfig> = {}): { host: Host; vms: Vm[] } {
  return buildIdenticalVms(sim, { ...p, vms: n }, overrides);
}

/** The guest-side acceptance metrics of every VM under `vmN.guest.`. */
export function perVmAcceptMetrics(sim: Sim, vms: readonly Vm[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const vm of vms) for (const [name, value] of Object.entries(acceptMetrics(sim, vm.guest))) out[`${vm.name}.guest.${name}`] = value;
  return out;
}

/** The host admits `n` guests of this configuration; the guest's combination is valid. */
export function checkVms(p: HostParams & GuestParams, n: number): string | undefined {
  return checkIdenticalVms({ ...p, vms: n });
}
