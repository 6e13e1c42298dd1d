import { countMetric, measureMetric } from '../sim/index.ts';
import { finishedBoot, startBoot } from '../models/workloads/boot.ts';
import { enumParam, numberParam, type Experiment } from './experiment.ts';
import { buildIdenticalVms, checkIdenticalVms, finishHost, guestParams, ownerMetricSpecs, platformParams } from './wiring.ts';

/**
 * pamt-contention (Q4): N TDs of M vCPUs boot at once on one host under the kernel's PAMT policy
 * (`pamt`: static, refcount, lazy). Every AUG and SEPT.ADD of every TD walks the one PAMT of the
 * host; with refcount the first 4K page of each 2M host range takes the global pamt_lock and runs
 * TDH.PHYMEM.PAMT.ADD; with lazy the module answers TDX_MISSING_PAMT_PAGE_PAIR first and racing
 * vCPUs meet each other's PAMT.ADD (BUSY, TDX_HPA_RANGE_NOT_FREE). Reports the lock's
 * acquisitions, contended acquisitions and spin time, PAMT BUSY and MISSING answers by leaf,
 * pairs and their memory, the per-vCPU cache falling short, the EPT-violation time per exit and
 * the boot times. Run the three policies as three cases (baselines) or with `cvmsim sweep`.
 */

const pamtContentionParams = {
  ...platformParams,
  ...guestParams,
  platform: enumParam(['tdx'] as const, 'tdx', 'TDX only: the PAMT is the TDX module\'s'),
  pamt: { ...platformParams.pamt, default: 'refcount' as const },
  accept: { ...guestParams.accept, default: 'eager' as const },
  memory_gib: { ...guestParams.memory_gib, default: 2, description: 'RAM of each TD' },
  vcpus: { ...guestParams.vcpus, description: 'vCPUs of each TD' },
  vms: numberParam({ default: 4, unit: 'TDs', description: 'TDs booting at once on the host', min: 1, max: 256, integer: true }),
};

export const pamtContention: Experiment<typeof pamtContentionParams> = {
  name: 'pamt-contention',
  question: 'Q4: with N TDs x M vCPUs booting at once, how much do the PAMT policies (static, refcount with a global pamt_lock, lazy) cost in lock contention, PAMT BUSY answers and boot time?',
  params: pamtContentionParams,
  metrics: {
    all_booted_s: measureMetric('s', 'host time until every TD reached a shell'),
    boot_to_userspace_s_mean: measureMetric('s', 'boot to a shell, mean over the TDs'),
    boot_to_userspace_s_max: measureMetric('s', 'boot to a shell, the slowest TD'),
    ept_violation_exits: countMetric('exits', 'EPT-violation exits of all TDs'),
    ept_violation_ns_mean: measureMetric('ns', 'host time per EPT-violation exit, mean over all TDs (aggregated steps count each exit)'),
    pamt_lock_contended_fraction: measureMetric('fraction', 'pamt_lock acquisitions that spun'),
    pamt_busy_total: countMetric('answers', 'TDX_OPERAND_BUSY from PAMT entry locks, all leaves'),
    vms_booted: countMetric('TDs', 'TDs that reached a shell'),
    ...ownerMetricSpecs,
  },
  check: checkIdenticalVms,
  run(p, sim) {
    const { host, vms } = buildIdenticalVms(sim, p);
    const boots = vms.map((vm) => startBoot(vm.guest, { application: null, after: vm.startSetup() }, 0));
    sim.run();
    sim.finishRun();
    vms.forEach((vm, i) => finishedBoot(vm.guest, boots[i]!));
    const times = vms.map((vm) => (vm.guest.metrics.milestones.get('userspace') ?? 0) / 1e9);
    const owners = finishHost(host, vms);
    let exits = 0;
    let exitNs = 0;
    for (const vm of vms) {
      exits += owners[`${vm.name}.kvm.exits.EPT_VIOLATION`] ?? 0;
      exitNs += owners[`${vm.name}.kvm.exit_ns.EPT_VIOLATION`] ?? 0;
    }
    const acquisitions = owners['host.tdx_pamt.pamt_lock.acquisitions'] ?? 0;
    return {
      metrics: {
        all_booted_s: Math.max(...times),
        boot_to_userspace_s_mean: times.reduce((a, b) => a + b, 0) / times.length,
        boot_to_userspace_s_max: Math.max(...times),
        ept_violation_exits: exits,
        ept_violation_ns_mean: exits > 0 ? exitNs / exits : 0,
        pamt_lock_contended_fraction: acquisitions > 0 ? (owners['host.tdx_pamt.pamt_lock.contended'] ?? 0) / acquisitions : 0,
        pamt_busy_total: owners['tdx.pamt.busy'] ?? 0,
        vms_booted: vms.length,
        ...owners,
      },
    };
  },
};
