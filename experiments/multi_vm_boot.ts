import { GiB, MS, countMetric, measureMetric } from '../sim/index.ts';
import { enumParam, numberParam, type Curve, type Experiment } from './experiment.ts';
import { Vm } from '../models/vm/vm.ts';
import { APPLICATION_ARRIVALS, defaultApplicationConfig } from '../models/workloads/application.ts';
import { finishedBoot, startBoot } from '../models/workloads/boot.ts';
import { acceptMetricSpecs, acceptMetrics } from './accept_boot.ts';
import { buildIdenticalVms, checkIdenticalVms, finishHost, guestParams, ownerMetricSpecs, platformParams } from './wiring.ts';

/**
 * multi-vm-boot: N confidential guests of M vCPUs each boot on one host, at once or staggered.
 * What they share is the host's: its CPUs (every vCPU thread needs one while it runs), its
 * memory and memory bandwidth, the TDX module (one Td per guest) or the RMP. Reports each VM's
 * boot times, their spread across VMs, and the host's utilisation, run-queue waits and memory.
 */

export const STAGGERS = ['together', 'staggered'] as const;

const multiVmBootParams = {
  ...platformParams,
  ...guestParams,
  memory_gib: { ...guestParams.memory_gib, description: 'RAM of each guest' },
  vcpus: { ...guestParams.vcpus, description: 'vCPUs of each guest' },
  vms: numberParam({ default: 4, unit: 'VMs', description: 'guests on the host', min: 1, max: 256, integer: true }),
  start: enumParam(STAGGERS, 'together', 'every VM starts at 0, or VM n starts (n-1) x stagger_ms later'),
  stagger_ms: numberParam({ default: 500, unit: 'ms', description: 'start=staggered: time between two VMs\' starts', min: 0, max: 600_000 }),
  app_gib: numberParam({ default: 0, unit: 'GiB', description: 'optional application phase in every VM after its boot: memory allocated and touched', min: 0, max: 4096 }),
  app_threads: numberParam({ default: 2, unit: 'threads', description: 'application threads per VM', min: 1, max: 512, integer: true }),
  app_rate_gib_s: numberParam({ default: 0.5, unit: 'GiB/s', description: 'allocation rate of each application thread (0: as fast as it can)', min: 0, max: 1000 }),
  app_arrivals: enumParam(APPLICATION_ARRIVALS, 'poisson', 'allocation steps arrive with exponential gaps (each VM its own streams) or evenly spaced'),
};

/** The boot milestones reported per VM and across VMs. */
const MILESTONES = [
  ['boot_to_init_s', 'init', 'VM start to run_init_process()'],
  ['boot_to_userspace_s', 'userspace', 'VM start to a shell'],
  ['firmware_s', 'exit_boot_services', 'VM start to ExitBootServices'],
  ['vm_setup_s', 'vm_setup_done', 'VM start to the firmware\'s first instruction (the VMM\'s setup)'],
] as const;

const perVmSpecs = Object.fromEntries(MILESTONES.map(([name, , what]) => [`vm*.${name}`, measureMetric('s', `${what}, this VM`)]));
const acrossSpecs = Object.fromEntries(MILESTONES.flatMap(([name, , what]) => [
  [`${name}_mean`, measureMetric('s', `${what}: mean over the VMs`)],
  [`${name}_min`, measureMetric('s', `${what}: the fastest VM`)],
  [`${name}_max`, measureMetric('s', `${what}: the slowest VM`)],
]));
/** The guest-side acceptance metrics, per VM. */
const perVmAcceptSpecs = Object.fromEntries(Object.entries(acceptMetricSpecs)
  .filter(([name]) => !Object.hasOwn(ownerMetricSpecs, name))
  .map(([name, spec]) => [`vm*.guest.${name}`, spec]));

export const multiVmBoot: Experiment<typeof multiVmBootParams> = {
  name: 'multi-vm-boot',
  question: 'Host and VMs: how do N confidential guests booting at once (or staggered) on one host slow each other down through its CPUs, memory bandwidth and TDX module or RMP?',
  params: multiVmBootParams,
  metrics: {
    all_booted_s: measureMetric('s', 'host time from the first VM start until every VM reached a shell'),
    ...acrossSpecs,
    ...perVmSpecs,
    ...perVmAcceptSpecs,
    vms_booted: countMetric('VMs', 'VMs that reached a shell'),
    ...ownerMetricSpecs,
  },
  check: checkIdenticalVms,
  run(p, sim) {
    const { host, vms } = buildIdenticalVms(sim, p);
    const startNs = (i: number) => (p.start === 'staggered' ? Math.round(i * p.stagger_ms * MS) : 0);
    const application = p.app_gib > 0
      ? defaultApplicationConfig({ threads: p.app_threads, bytes: Math.round(p.app_gib * GiB), rateBytesPerSec: p.app_rate_gib_s * GiB, arrivals: p.app_arrivals })
      : null;
    const boots = vms.map((vm, i) => startBoot(vm.guest, { application, after: vm.startSetup(startNs(i)) }, startNs(i)));
    sim.run();
    sim.finishRun();
    const results = vms.map((vm, i) => finishedBoot(vm.guest, boots[i]!));
    const metrics: Record<string, number> = { vms_booted: results.length };
    let allBooted = 0;
    for (const [name, milestone] of MILESTONES) {
      const times = vms.map((vm, i) => ((vm.guest.metrics.milestones.get(milestone) ?? 0) - startNs(i)) / 1e9);
      vms.forEach((vm, i) => (metrics[`${vm.name}.${name}`] = times[i]!));
      metrics[`${name}_mean`] = times.reduce((a, b) => a + b, 0) / times.length;
      metrics[`${name}_min`] = Math.min(...times);
      metrics[`${name}_max`] = Math.max(...times);
    }
    vms.forEach((vm, i) => (allBooted = Math.max(allBooted, (vm.guest.metrics.milestones.get('userspace') ?? 0) / 1e9)));
    metrics['all_booted_s'] = allBooted;
    for (const vm of vms) {
      for (const [name, value] of Object.entries(acceptMetrics(sim, vm.guest))) metrics[`${vm.name}.guest.${name}`] = value;
    }
    return {
      metrics: { ...metrics, ...finishHost(host, vms) },
      curves: { boot_to_userspace_s_per_vm: perVmCurve(vms, startNs), host_memory_used_gib: hostMemoryCurve(host.memory.curve()) },
    };
  },
};

/** Boot-to-shell time of each VM (x: VM number). */
function perVmCurve(vms: readonly Vm[], startNs: (i: number) => number): Curve {
  return {
    x: vms.map((vm) => vm.record.id),
    y: vms.map((vm, i) => ((vm.guest.metrics.milestones.get('userspace') ?? 0) - startNs(i)) / 1e9),
    xUnit: 'VM', yUnit: 's', xLabel: 'VM', yLabel: 'boot to a shell',
  };
}

/** Host memory in use over the run. */
function hostMemoryCurve(c: { timeNs: readonly number[]; bytes: readonly number[] }): Curve {
  return { x: c.timeNs.map((t) => t / 1e9), y: c.bytes.map((b) => b / GiB), xUnit: 's', yUnit: 'GiB', xLabel: 'virtual time', yLabel: 'host memory in use' };
}
