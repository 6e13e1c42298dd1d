import { GiB, countMetric, measureMetric, type MetricSpecs, type Sim } from '../sim/index.ts';
import { numberParam, type Curve, type Experiment } from './experiment.ts';
import type { GuestKernel } from '../models/guest/kernel.ts';
import { defaultApplicationConfig } from '../models/workloads/application.ts';
import { finishedBoot, startBoot } from '../models/workloads/boot.ts';
import { buildVms, checkVms, perVmAcceptMetrics, perVmAcceptSpecs, vmsParam } from './multi_vm.ts';
import { finishHost, guestParams, ownerMetricSpecs, platformParams } from './wiring.ts';

/**
 * accept-boot (Q1, see the README): boot a confidential guest from VM start to a shell under one
 * acceptance strategy and report boot times, acceptance CPU time, accept-lock contention, soft
 * lockups and OOMs. This file also holds the acceptance metrics the other accept-* experiments
 * share.
 */

// ---- Shared metrics ---------------------------------------------------------------------------

const times = measureMetric;
const count = countMetric;

export const acceptMetricSpecs: MetricSpecs = {
  accept_cpu_s: times('s', 'vCPU time inside the kernel\'s arch_accept_memory() (EFI stub, decompressor, memblock, page allocator, acceptor threads), all vCPUs; the firmware\'s pre-accept is firmware_accept_cpu_s'),
  accept_cpu_max_vcpu_s: times('s', 'the busiest vCPU\'s time inside the kernel\'s arch_accept_memory()'),
  firmware_accept_cpu_s: times('s', 'vCPU time the firmware (TDVF/OVMF) spent accepting before the kernel, all vCPUs'),
  accepted_gib: times('GiB', 'memory accepted by the end of the run (firmware included)'),
  accepting_list_waits: count('waits', 'accept_memory() callers that found an overlapping range on accepting_list'),
  accepting_list_wait_ms: times('ms', 'time those callers spun, interrupts off'),
  accepting_list_false_waits: count('waits', 'of those, waits for an entry that shared no unit with the caller\'s range (accepting_list_check=v6.6)'),
  accept_lock_acquisitions: count('acquisitions', 'unaccepted_memory_lock acquisitions'),
  accept_lock_contended: count('acquisitions', 'unaccepted_memory_lock acquisitions that had to spin'),
  accept_lock_wait_ms: times('ms', 'total spin time on unaccepted_memory_lock'),
  soft_lockups: count('reports', 'non-preemptible stretches longer than 20 s (watchdog_thresh x 2)'),
  oom_events: count('events', 'allocations that found no page in any zone'),
  wmark_zero_blocks: count('blocks', 'MAX_ORDER blocks accepted while watermarks were zero'),
  background_accept_s: times('s', 'accept=background: vCPU time the acceptor threads spent accepting'),
  background_cpu_s: times('s', 'accept=background: compute time of the acceptor threads outside arch_accept_memory()'),
  idle_ticks: count('ticks', 'timer ticks taken by idle vCPUs (each a HLT exit to the host, and with tick_rearm_exit a TSC-deadline exit before it)'),
  ...ownerMetricSpecs,
};

/** The acceptance metrics every accept-* experiment reports. */
export function acceptMetrics(sim: Sim, k: GuestKernel): Record<string, number> {
  const m = k.metrics;
  const lock = k.unaccepted.unaccepted_memory_lock.stats;
  return {
    accept_cpu_s: m.acceptNsTotal / 1e9,
    accept_cpu_max_vcpu_s: Math.max(...m.acceptNsPerVcpu) / 1e9,
    firmware_accept_cpu_s: m.firmwareAcceptNsPerVcpu.reduce((a, b) => a + b, 0) / 1e9,
    accepted_gib: m.acceptedBytes / GiB,
    accepting_list_waits: m.acceptingListWaits,
    accepting_list_wait_ms: m.acceptingListWaitNs / 1e6,
    accepting_list_false_waits: m.acceptingListFalseWaits,
    accept_lock_acquisitions: lock.acquisitions,
    accept_lock_contended: lock.contended,
    accept_lock_wait_ms: lock.wait.sum / 1e6,
    soft_lockups: sim.softLockups.length,
    oom_events: m.oomEvents,
    wmark_zero_blocks: m.wmarkZeroBlocks,
    background_accept_s: (m.acceptNsBy.get('background') ?? 0) / 1e9,
    background_cpu_s: (k.acceptor?.cpuNs() ?? 0) / 1e9,
    idle_ticks: k.idle.ticks,
  };
}

/** Memory accepted over time (GiB against seconds of virtual time). */
export function acceptedCurve(k: GuestKernel): Curve {
  const m = k.metrics;
  return { x: m.acceptedCurveT.map((t) => t / 1e9), y: m.acceptedCurveBytes.map((b) => b / GiB), xUnit: 's', yUnit: 'GiB' };
}

/** Acceptance time per vCPU. */
export function acceptPerVcpuCurve(k: GuestKernel): Curve {
  const per = k.metrics.acceptNsPerVcpu;
  return { x: per.map((_, i) => i), y: per.map((ns) => ns / 1e9), xUnit: 'vCPU', yUnit: 's' };
}

// ---- accept-boot ---------------------------------------------------------------------------

const acceptBootParams = {
  ...platformParams,
  ...guestParams,
  app_gib: numberParam({ default: 0, unit: 'GiB', description: 'optional application phase after boot: memory allocated and touched', min: 0, max: 4096 }),
  app_threads: numberParam({ default: 4, unit: 'threads', description: 'application threads', min: 1, max: 512, integer: true }),
  vms: vmsParam,
};

/** The boot milestones reported: the slowest VM's, and each VM's as vmN.<metric>. */
const BOOT_MILESTONES = [
  ['boot_to_init_s', 'init'],
  ['boot_to_userspace_s', 'userspace'],
  ['firmware_s', 'exit_boot_services'],
  ['vm_setup_s', 'vm_setup_done'],
] as const;

export const acceptBoot: Experiment<typeof acceptBootParams> = {
  name: 'accept-boot',
  question: 'Q1: how long does a confidential guest take to boot to init and to a shell when it accepts its memory eagerly, lazily, or lazily with background acceptor threads?',
  params: acceptBootParams,
  metrics: {
    boot_to_init_s: times('s', 'VM start to run_init_process() (the VMM\'s setup included; vms > 1: the slowest VM)'),
    boot_to_userspace_s: times('s', 'VM start to a shell (boot-to-shell; vms > 1: the slowest VM)'),
    firmware_s: times('s', 'VM start to ExitBootServices (the VMM\'s setup, the firmware and its pre-accept; vms > 1: the slowest VM)'),
    vm_setup_s: times('s', 'VM start to the firmware\'s first instruction: the VMM\'s setup (0 with vm_setup=false; vms > 1: the slowest VM)'),
    kernel_s: times('s', 'start_kernel() to run_init_process() (vms > 1: VM 1)'),
    app_s: times('s', 'application phase duration (0 without one; vms > 1: VM 1)'),
    ...Object.fromEntries(BOOT_MILESTONES.map(([name]) => [`vm*.${name}`, times('s', `${name} of this VM`)])),
    ...perVmAcceptSpecs(),
    ...acceptMetricSpecs,
  },
  check: (p) => checkVms(p, p.vms),
  run(p, sim) {
    const { host, vms } = buildVms(sim, p, p.vms);
    const application = p.app_gib > 0 ? defaultApplicationConfig({ threads: p.app_threads, bytes: Math.round(p.app_gib * GiB) }) : null;
    const boots = vms.map((vm) => startBoot(vm.guest, { application, after: vm.startSetup() }));
    sim.run();
    sim.finishRun();
    const results = vms.map((vm, i) => finishedBoot(vm.guest, boots[i]!));
    const k = vms[0]!.guest;
    const result = results[0]!;
    const at = (g: GuestKernel, name: string) => (g.metrics.milestones.get(name) ?? 0) / 1e9;
    const metrics: Record<string, number> = {
      kernel_s: at(k, 'init') - at(k, 'start_kernel'),
      app_s: result.application === null ? 0 : (result.application.endNs - result.application.startNs) / 1e9,
    };
    for (const [name, milestone] of BOOT_MILESTONES) {
      metrics[name] = Math.max(...vms.map((vm) => at(vm.guest, milestone)));
      for (const vm of vms) metrics[`${vm.name}.${name}`] = at(vm.guest, milestone);
    }
    if (vms.length === 1) Object.assign(metrics, acceptMetrics(sim, k));
    Object.assign(metrics, perVmAcceptMetrics(sim, vms));
    return {
      metrics: { ...metrics, ...finishHost(host, vms) },
      curves: { accepted_gib: acceptedCurve(k), accept_s_per_vcpu: acceptPerVcpuCurve(k) },
    };
  },
};
