import { GiB } from '../sim/index.ts';
import type { Experiment } from './experiment.ts';
import { runAcceptAll } from '../models/workloads/accept_all.ts';
import { acceptMetricSpecs, acceptMetrics, acceptPerVcpuCurve, acceptedCurve } from './accept_boot.ts';
import { buildSingleVm, checkHostParams, finishHost, guestParams, platformParams } from './wiring.ts';

const acceptThroughputParams = {
  ...platformParams,
  memory_gib: { ...guestParams.memory_gib, default: 8 },
  vcpus: guestParams.vcpus,
  accept_lock: guestParams.accept_lock,
  firmware_accept_mib: guestParams.firmware_accept_mib,
};

/**
 * accept-throughput (Q1, see the README; [R2]): accept all of a guest's memory with one
 * kernel thread per vCPU and report how long it takes. How the time scales with vCPUs comes
 * from the host model (exits, KVM's mmu_lock, the TDX module's try-locks, host CPUs and memory
 * bandwidth), not from a formula.
 */
export const acceptThroughput: Experiment<typeof acceptThroughputParams> = {
  name: 'accept-throughput',
  question: 'Q1: how fast can a confidential guest accept its memory with a given number of vCPUs, and where does adding vCPUs stop helping?',
  params: acceptThroughputParams,
  metrics: {
    accept_s: { unit: 's', description: 'time for the vCPUs to accept everything firmware left unaccepted', tolerance: { kind: 'relative', value: 0.05 } },
    accept_gib_per_s: { unit: 'GiB/s', description: 'acceptance rate of the whole guest', tolerance: { kind: 'relative', value: 0.05 } },
    accepted_by_threads_gib: { unit: 'GiB', description: 'memory the accept threads accepted', tolerance: { kind: 'relative', value: 0.001 } },
    ...acceptMetricSpecs,
  },
  check: (p) => checkHostParams(p, [{ vcpus: p.vcpus, memoryBytes: p.memory_gib * GiB }]),
  run(p, sim) {
    const { host, vm } = buildSingleVm(sim, {
      ...p, accept: 'lazy', allocator: 'upstream', firmware: 'lazy', deferred_struct_page_init: true, wmark_zero_fix: true,
      // No initcalls run (the threads accept everything right after deferred init), so THP's
      // watermark change never happens here: the parameter is fixed, not exposed.
      thp: 'madvise', hz: 0, nohz_idle: true, skew_tick: false, variation: false, tick_rearm_exit: false, background_threads: 1, background_pace_us: 0,
    });
    const k = vm.guest;
    const r = runAcceptAll(sim, k);
    const seconds = (r.endNs - r.startNs) / 1e9;
    return {
      metrics: {
        accept_s: seconds,
        accept_gib_per_s: seconds > 0 ? r.acceptedBytes / GiB / seconds : 0,
        accepted_by_threads_gib: r.acceptedBytes / GiB,
        ...acceptMetrics(sim, k),
        ...finishHost(host, [vm]),
      },
      curves: { accepted_gib: acceptedCurve(k), accept_s_per_vcpu: acceptPerVcpuCurve(k) },
    };
  },
};
