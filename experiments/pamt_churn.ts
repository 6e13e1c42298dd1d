import { GiB, Histogram, MS, SimError, countMetric, measureMetric, type Proc, type Sim } from '../sim/index.ts';
import { HostOutOfMemory } from '../models/kvm/guest_memfd.ts';
import { PamtOutOfMemory } from '../models/host/tdx_pamt.ts';
import type { Host } from '../models/host/host.ts';
import { Vm } from '../models/vm/vm.ts';
import { startBoot } from '../models/workloads/boot.ts';
import { enumParam, numberParam, type Curve, type Experiment } from './experiment.ts';
import { buildHost, checkGuestParams, checkHostParams, finishHost, guestConfigFrom, guestParams, ownerMetricSpecs, platformParams, vmConfigFrom } from './wiring.ts';

/**
 * pamt-churn (Q4, issue 12 item 7): TDs that stop, under the kernel's PAMT policy.
 * - `churn`: TDs arrive one after another (exponential gaps of mean `arrival_ms`, each drawn from
 *   the TD's own stream `vm.<n>.churn.arrival`), boot (eager: every page faulted in), stop, and
 *   KVM tears them down (HKID released, every page reclaimed and put, guest_memfd released)
 *   while later TDs boot: the freed host blocks go to the next TDs.
 * - `shutdown_storm`: all TDs boot at once, then all stop at once: N teardowns on one host
 *   (tdx_lock, pamt_lock, PAMT.REMOVE of every pair).
 * - `fill`: TDs boot one after another on a host with exactly their RAM
 *   (`host_memory_gib`=0: vms x memory_gib) until the host runs out: S-EPT pages, control
 *   pages and (Dynamic PAMT) page pairs need memory the guests' RAM does not leave. The first
 *   -ENOMEM (guest_memfd's HostOutOfMemory, or no page for a pair) ends the run: an expected
 *   outcome, counted (`host_oom`), with the memory at that moment; an aborted run's in-flight
 *   state is not checked (locks held mid-fault).
 * Reports teardown time, fault latency (EPT-violation time per exit) p50/p99/max, pairs added
 * and removed, PAMT memory over time (a curve), leaks (pairs no page uses at the end) and the
 * lazy scheme's races on its hints.
 */

export const PAMT_CHURN_WORKLOADS = ['churn', 'shutdown_storm', 'fill'] as const;

const pamtChurnParams = {
  ...platformParams,
  ...guestParams,
  platform: enumParam(['tdx'] as const, 'tdx', 'TDX only: the PAMT is the TDX module\'s'),
  pamt: { ...platformParams.pamt, default: 'refcount' as const },
  accept: { ...guestParams.accept, default: 'eager' as const },
  memory_gib: { ...guestParams.memory_gib, default: 1, description: 'RAM of each TD' },
  vcpus: { ...guestParams.vcpus, default: 2, description: 'vCPUs of each TD' },
  vms: numberParam({ default: 6, unit: 'TDs', description: 'TDs started over the run', min: 1, max: 256, integer: true }),
  workload: enumParam(PAMT_CHURN_WORKLOADS, 'churn', 'churn: TDs start at a rate, boot and stop; shutdown_storm: all boot, then all stop at once; fill: TDs boot one after another until the host runs out of memory'),
  arrival_ms: numberParam({ default: 1000, unit: 'ms', description: 'churn: mean gap between TD starts (exponential, per TD stream vm.<n>.churn.arrival); fill: the fixed gap', min: 0, max: 1e7 }),
  sample_ms: numberParam({ default: 50, unit: 'ms', description: 'period of the PAMT memory curve', min: 1, max: 1e6 }),
};

export const pamtChurn: Experiment<typeof pamtChurnParams> = {
  name: 'pamt-churn',
  question: 'Q4: when TDs start and stop on one host (churn, shutdown storms, filling the host), what do the PAMT policies cost at teardown, do their pairs come back, and what do faults cost?',
  params: pamtChurnParams,
  metrics: {
    tds_started: countMetric('TDs', 'TDs created on the host'),
    tds_stopped: countMetric('TDs', 'TDs torn down (every page reclaimed, HKID free, host record ended)'),
    host_oom: countMetric('events', 'fill: host out of memory (the run ends there; 0 if every TD fitted)'),
    oom_at_s: measureMetric('s', 'fill: host time of the -ENOMEM (0 without)'),
    run_s: measureMetric('s', 'host time until the last event'),
    teardown_ms_mean: measureMetric('ms', 'KVM teardown of one TD (release HKID to guest_memfd freed), mean'),
    teardown_ms_max: measureMetric('ms', 'the slowest teardown'),
    fault_ns_p50: measureMetric('ns', 'EPT-violation exit time per exit, median over every TD (aggregated steps count each exit at the step mean)'),
    fault_ns_p99: measureMetric('ns', 'EPT-violation exit time per exit, 99th percentile'),
    fault_ns_max: measureMetric('ns', 'EPT-violation exit time per exit, maximum (an aggregated step contributes its mean)'),
    pairs_added: countMetric('SEAMCALLs', 'successful TDH.PHYMEM.PAMT.ADD'),
    pairs_removed: countMetric('SEAMCALLs', 'successful TDH.PHYMEM.PAMT.REMOVE'),
    pamt_bytes_peak: countMetric('bytes', 'most DPAMT pair memory in use at any time'),
    leaked_pairs: countMetric('pairs', 'pairs at the end under which no page is in use (leaks: lazy\'s lost hints, refcount\'s WARN path); fill: at the -ENOMEM'),
    ...ownerMetricSpecs,
  },
  check(p) {
    const vm = { vcpus: p.vcpus, memoryBytes: p.memory_gib * GiB };
    const concurrent = p.workload === 'churn' ? 1 : p.vms;
    return checkGuestParams(p) ?? checkHostParams(fillHost(p), Array.from({ length: concurrent }, () => vm), fillOvercommit(p));
  },
  run(p, sim) {
    const guest = guestConfigFrom(p);
    const host = buildHost(sim, fillHost(p), p.vms * p.vcpus, p.vms * guest.memoryBytes, fillOvercommit(p));
    const vms: Vm[] = [];
    const teardownNs: number[] = [];
    const curve: Curve = { x: [], y: [], xUnit: 's', yUnit: 'MiB', xLabel: 'virtual time', yLabel: 'DPAMT pairs' };
    let running = true;
    let ended = 0;
    const module = host.tdx!;
    // The PAMT memory curve: the pairs in the module every sample_ms while TDs run.
    sim.schedule(0, function sample() {
      curve.x.push(sim.now / 1e9);
      curve.y.push(module.pamt.dynamicBytes / 2 ** 20);
      if (running) sim.schedule(p.sample_ms * MS, sample, 'pamt-sample');
    }, 'pamt-sample');
    const starts = arrivalTimes(sim, p);
    const lifecycles: Proc<void>[] = [];
    const boots: ReturnType<typeof startBoot>[] = [];
    for (let i = 0; i < p.vms; i++) {
      lifecycles.push((function* (): Proc<void> {
        if (starts[i]! > 0) yield sim.sleep(starts[i]!);
        const vm = new Vm(sim, host, vmConfigFrom(p, guest));
        vms.push(vm);
        const boot = startBoot(vm.guest, { application: null, after: vm.startSetup() }, 0);
        boots.push(boot);
        yield boot.join();
        if (p.workload === 'fill') {
          if (++ended === p.vms) running = false;
          return;
        }
        // A storm: every TD was created at 0; wait for all boots, then all stop at once.
        if (p.workload === 'shutdown_storm') for (const b of boots) yield b.join();
        // The VMM's last close of the VM fd, on its vCPU 0 thread (a host CPU): KVM's teardown.
        const t0 = sim.now;
        const exit = sim.spawn(vm.shutdown(), { name: `${vm.name}/vmm-exit`, cpu: vm.vcpus[0]!, service: `vmm/${vm.name}` });
        yield exit.join();
        teardownNs.push(sim.now - t0);
        if (++ended === p.vms) running = false;
      })());
    }
    lifecycles.forEach((body, i) => sim.spawn(body, { name: `vmm${i + 1}/lifecycle`, service: `vmm/vm${i + 1}` }));
    let oomAt = 0;
    try {
      sim.run();
    } catch (e) {
      const cause = e instanceof SimError ? e.cause : e;
      if (!(cause instanceof HostOutOfMemory || cause instanceof PamtOutOfMemory) || p.workload !== 'fill') throw e;
      oomAt = sim.now;
    }
    running = false;
    const owners = oomAt > 0 ? ownersAtOom(host, vms) : (sim.finishRun(), finishHost(host, vms));
    const faults = new Histogram('fault');
    for (const vm of vms) {
      const h = vm.kvm.exits.histogram('EPT_VIOLATION');
      if (h !== null) faults.merge(h);
    }
    const kernel = host.tdxPamt!;
    return {
      metrics: {
        tds_started: vms.length,
        tds_stopped: teardownNs.length,
        host_oom: oomAt > 0 ? 1 : 0,
        oom_at_s: oomAt / 1e9,
        run_s: sim.now / 1e9,
        teardown_ms_mean: teardownNs.length > 0 ? teardownNs.reduce((a, b) => a + b, 0) / teardownNs.length / 1e6 : 0,
        teardown_ms_max: teardownNs.length > 0 ? Math.max(...teardownNs) / 1e6 : 0,
        fault_ns_p50: faults.count > 0 ? faults.quantile(0.5) : 0,
        fault_ns_p99: faults.count > 0 ? faults.quantile(0.99) : 0,
        fault_ns_max: faults.count > 0 ? faults.max : 0,
        pairs_added: module.pamt.counters.pairsAdded,
        pairs_removed: module.pamt.counters.pairsRemoved,
        pamt_bytes_peak: module.pamt.counters.pairsPeak * 8192,
        leaked_pairs: kernel.dynamic ? kernel.idlePairs() : 0,
        ...owners,
      },
      curves: { pamt_mib: curve },
    };
  },
};

/** fill: a host with exactly the TDs' RAM unless host_memory_gib says otherwise. */
function fillHost<P extends { workload: string; host_memory_gib: number; vms: number; memory_gib: number }>(p: P): P {
  if (p.workload !== 'fill' || p.host_memory_gib !== 0) return p;
  return { ...p, host_memory_gib: p.vms * p.memory_gib };
}

/**
 * fill: the host holds exactly the TDs' RAM, less what the PAMT and the TDs' own pages need, so
 * it is overcommitted and runs out at a fault, as KVM allows.
 */
function fillOvercommit(p: { workload: string }): { overcommit?: boolean } {
  return p.workload === 'fill' ? { overcommit: true } : {};
}

/** When each TD starts: churn draws exponential gaps from the TD's own stream; fill spaces them evenly; a storm starts all at 0. */
function arrivalTimes(sim: Sim, p: { workload: string; vms: number; arrival_ms: number }): number[] {
  const out: number[] = [];
  let t = 0;
  for (let i = 0; i < p.vms; i++) {
    if (p.workload === 'shutdown_storm') out.push(0);
    else {
      if (i > 0) t += p.workload === 'churn' ? Math.round(sim.rng(`vm.${i + 1}.churn.arrival`).exponential(p.arrival_ms * MS)) : p.arrival_ms * MS;
      out.push(t);
    }
  }
  return out;
}

/** fill: the owners' metrics at the -ENOMEM, without the end-of-run balance (faults were in flight). */
function ownersAtOom(host: Host, vms: readonly Vm[]): Record<string, number> {
  const out: Record<string, number> = {};
  host.metrics(out);
  for (const vm of vms) vm.metrics(vm.name, out);
  return out;
}
