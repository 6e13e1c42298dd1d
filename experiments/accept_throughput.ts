import { GiB, measureMetric } from '../sim/index.ts';
import type { Experiment } from './experiment.ts';
import { finishedAcceptAll, startAcceptAll } from '../models/workloads/accept_all.ts';
import { acceptMetricSpecs, acceptMetrics, acceptPerVcpuCurve, acceptedCurve } from './accept_boot.ts';
import { buildVms, checkVms, perVmAcceptMetrics, perVmAcceptSpecs, vmsParam } from './multi_vm.ts';
import { finishHost, guestParams, platformParams } from './wiring.ts';

const acceptThroughputParams = {
  ...platformParams,
  memory_gib: { ...guestParams.memory_gib, default: 8, description: 'RAM of each guest' },
  vcpus: { ...guestParams.vcpus, description: 'vCPUs of each guest' },
  accept_lock: guestParams.accept_lock,
  accepting_list_check: guestParams.accepting_list_check,
  firmware_accept_mib: guestParams.firmware_accept_mib,
  vms: vmsParam,
};

/**
 * accept-throughput (Q1, see the README; [R2]): accept all of a guest's memory with one
 * kernel thread per vCPU and report how long it takes. How the time scales with vCPUs comes
 * from the host model (exits, KVM's mmu_lock, the TDX module's try-locks, host CPUs and memory
 * bandwidth), not from a formula. With `vms` > 1 that many guests accept at once on one host.
 */
export const acceptThroughput: Experiment<typeof acceptThroughputParams> = {
  name: 'accept-throughput',
  question: 'Q1: how fast can a confidential guest accept its memory with a given number of vCPUs, and where does adding vCPUs stop helping?',
  params: acceptThroughputParams,
  metrics: {
    accept_s: { unit: 's', description: 'time for the vCPUs to accept everything firmware left unaccepted (vms > 1: from the first VM\'s start of acceptance to the last VM\'s end)', tolerance: { kind: 'relative', value: 0.05 } },
    accept_gib_per_s: { unit: 'GiB/s', description: 'acceptance rate of the whole guest (vms > 1: of all guests together)', tolerance: { kind: 'relative', value: 0.05 } },
    accepted_by_threads_gib: { unit: 'GiB', description: 'memory the accept threads accepted (all guests)', tolerance: { kind: 'relative', value: 0.001 } },
    'vm*.accept_s': { unit: 's', description: 'this VM\'s acceptance time', tolerance: { kind: 'relative', value: 0.05 } },
    'vm*.accept_gib_per_s': { unit: 'GiB/s', description: 'this VM\'s acceptance rate', tolerance: { kind: 'relative', value: 0.05 } },
    'vm*.accept_start_s': measureMetric('s', 'when this VM\'s accept threads started (after its VM setup, firmware and deferred init)'),
    ...perVmAcceptSpecs(),
    ...acceptMetricSpecs,
  },
  check: (p) => checkVms({ ...p, ...FIXED_GUEST }, p.vms),
  run(p, sim) {
    const { host, vms } = buildVms(sim, { ...p, ...FIXED_GUEST }, p.vms);
    const runs = vms.map((vm) => startAcceptAll(vm.guest, vm.startSetup()));
    sim.run();
    sim.finishRun();
    const results = vms.map((vm, i) => finishedAcceptAll(vm.guest, runs[i]!));
    const start = Math.min(...results.map((r) => r.startNs));
    const end = Math.max(...results.map((r) => r.endNs));
    const seconds = (end - start) / 1e9;
    const accepted = results.reduce((a, r) => a + r.acceptedBytes, 0);
    const metrics: Record<string, number> = {
      accept_s: seconds,
      accept_gib_per_s: seconds > 0 ? accepted / GiB / seconds : 0,
      accepted_by_threads_gib: accepted / GiB,
    };
    // The guest metrics of a single VM at the top (as before vms existed); each VM's as vmN.*.
    if (vms.length === 1) Object.assign(metrics, acceptMetrics(sim, vms[0]!.guest));
    vms.forEach((vm, i) => {
      const r = results[i]!;
      const s = (r.endNs - r.startNs) / 1e9;
      metrics[`${vm.name}.accept_s`] = s;
      metrics[`${vm.name}.accept_gib_per_s`] = s > 0 ? r.acceptedBytes / GiB / s : 0;
      metrics[`${vm.name}.accept_start_s`] = r.startNs / 1e9;
    });
    Object.assign(metrics, perVmAcceptMetrics(sim, vms));
    const k = vms[0]!.guest;
    return {
      metrics: { ...metrics, ...finishHost(host, vms) },
      curves: { accepted_gib: acceptedCurve(k), accept_s_per_vcpu: acceptPerVcpuCurve(k) },
    };
  },
};

/**
 * The guest fixed for this experiment: lazy acceptance with deferred init, no ticks. No initcalls
 * run (the threads accept everything right after deferred init), so THP's watermark change never
 * happens here: the parameter is fixed, not exposed.
 */
const FIXED_GUEST = {
  kernel_config: 'distro', accept: 'lazy', allocator: 'upstream', firmware: 'lazy', deferred_struct_page_init: true, wmark_zero_fix: true,
  thp: 'madvise', hz: 0, nohz_idle: true, skew_tick: false, variation: false, tick_rearm_exit: false, background_threads: 1, background_pace_us: 0,
} as const;
