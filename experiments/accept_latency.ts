import { GiB, MiB } from '../sim/index.ts';
import { enumParam, numberParam, type Curve, type Experiment } from './experiment.ts';
import { APPLICATION_ARRIVALS, APPLICATION_PATTERNS, defaultApplicationConfig } from '../models/workloads/application.ts';
import { runGuest } from '../models/workloads/boot.ts';
import { acceptMetricSpecs, acceptMetrics, acceptPerVcpuCurve, acceptedCurve } from './accept_boot.ts';
import { buildSingleVm, checkSingleVm, finishHost, guestParams, platformParams } from './wiring.ts';

const acceptLatencyParams = {
  ...platformParams,
  ...guestParams,
  memory_gib: { ...guestParams.memory_gib, default: 16 },
  app_gib: numberParam({ default: 2, unit: 'GiB', description: 'memory the application allocates (churn: in total)', min: 0.001, max: 4096 }),
  app_threads: numberParam({ default: 2, unit: 'threads', description: 'application threads (on vCPUs 0, 1, ...)', min: 1, max: 512, integer: true }),
  app_rate_gib_s: numberParam({ default: 0.5, unit: 'GiB/s', description: 'allocation rate of each thread (0: as fast as it can)', min: 0, max: 1000 }),
  app_pattern: enumParam(APPLICATION_PATTERNS, 'allocate', 'grow to app_gib, or churn through it with a fixed working set'),
  app_arrivals: enumParam(APPLICATION_ARRIVALS, 'poisson', 'allocation steps arrive with exponential gaps (independent requests; the seed matters) or evenly spaced'),
  app_working_set_mib: numberParam({ default: 256, unit: 'MiB', description: 'churn: memory each thread keeps', min: 1, max: 1 << 22 }),
  chunk_pages: numberParam({ default: 64, unit: 'pages', description: 'pages per allocation step (1: the per-page path)', min: 1, max: 1 << 18, integer: true }),
};

/**
 * accept-latency (Q1, see the README): after boot, application threads allocate and touch memory;
 * report the allocation latency distribution (p50/p99/p999/max, spikes above 1 ms) under lazy
 * acceptance, lazy plus background acceptor threads, or eager acceptance, and what the
 * acceptance cost in CPU time and where.
 */
export const acceptLatency: Experiment<typeof acceptLatencyParams> = {
  name: 'accept-latency',
  question: 'Q1: what allocation latency does an application see under lazy acceptance, and how much does a background acceptor remove at what CPU cost?',
  params: acceptLatencyParams,
  metrics: {
    alloc_p50_us: { unit: 'us', description: 'allocation latency, median, per 4K page', tolerance: { kind: 'relative', value: 0.05 } },
    alloc_p99_us: { unit: 'us', description: 'allocation latency, 99th percentile', tolerance: { kind: 'relative', value: 0.05 } },
    alloc_p999_us: { unit: 'us', description: 'allocation latency, 99.9th percentile', tolerance: { kind: 'relative', value: 0.05 } },
    alloc_max_ms: { unit: 'ms', description: 'allocation latency, maximum', tolerance: { kind: 'relative', value: 0.05 } },
    alloc_mean_us: { unit: 'us', description: 'allocation latency, mean', tolerance: { kind: 'relative', value: 0.05 } },
    spikes_over_1ms: { unit: 'allocations', description: 'allocations slower than 1 ms', tolerance: { kind: 'exact' } },
    app_s: { unit: 's', description: 'application phase duration', tolerance: { kind: 'relative', value: 0.05 } },
    app_accept_s: { unit: 's', description: 'vCPU time cond_accept_memory() spent accepting for allocations', tolerance: { kind: 'relative', value: 0.05 } },
    boot_to_userspace_s: { unit: 's', description: 'VM start to a shell', tolerance: { kind: 'relative', value: 0.05 } },
    ...acceptMetricSpecs,
  },
  check: checkSingleVm,
  run(p, sim) {
    const { host, vm } = buildSingleVm(sim, p);
    const k = vm.guest;
    const application = defaultApplicationConfig({
      threads: p.app_threads,
      bytes: Math.round(p.app_gib * GiB),
      rateBytesPerSec: p.app_rate_gib_s * GiB,
      pattern: p.app_pattern,
      workingSetBytes: Math.round(p.app_working_set_mib * MiB),
      chunkPages: p.chunk_pages,
      arrivals: p.app_arrivals,
    });
    const result = runGuest(sim, k, { application, after: vm.startSetup() });
    const app = result.application!;
    const lat = k.metrics.allocLatency.snapshot();
    return {
      metrics: {
        alloc_p50_us: lat.p50 / 1e3,
        alloc_p99_us: lat.p99 / 1e3,
        alloc_p999_us: lat.p999 / 1e3,
        alloc_max_ms: lat.max / 1e6,
        alloc_mean_us: lat.mean / 1e3,
        spikes_over_1ms: k.metrics.allocSpikes,
        app_s: (app.endNs - app.startNs) / 1e9,
        app_accept_s: (k.metrics.acceptNsBy.get('cond_accept_memory') ?? 0) / 1e9,
        boot_to_userspace_s: (k.metrics.milestones.get('userspace') ?? 0) / 1e9,
        ...acceptMetrics(sim, k),
        ...finishHost(host, [vm]),
      },
      curves: { alloc_latency_cdf: latencyCdf(k.metrics.allocLatency.cdf()), accepted_gib: acceptedCurve(k), accept_s_per_vcpu: acceptPerVcpuCurve(k) },
    };
  },
};

/** The latency CDF as a curve: microseconds against the fraction of allocations at or below. */
function latencyCdf(points: [number, number][]): Curve {
  return { x: points.map(([v]) => v / 1e3), y: points.map(([, f]) => f), xUnit: 'us', yUnit: 'fraction', xLabel: 'allocation latency', yLabel: 'fraction of allocations' };
}
