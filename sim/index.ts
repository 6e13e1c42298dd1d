export * from './clock.ts';
export * from './assert.ts';
export { Sim, SimError, Timer, op, type SimOptions, type SoftLockup, type WaitStyle } from './sim.ts';
export {
  Process, Priority, Interrupt, SUSPEND, CONTINUE, type Proc, type Yield, type SpawnOptions, type Blocker,
} from './process.ts';
export { SimEvent } from './event.ts';
export { Cpu, type CpuOptions, type CpuAccounting, type CpuState } from './cpu.ts';
export {
  HostCpus, defaultHostSliceNs, type HostCpusOptions, type HostCpusAccounting, type HostCpuAccounting,
} from './host_cpus.ts';
export { Mutex } from './mutex.ts';
export { Spinlock, type SpinOptions, type SpinReleaseOptions } from './spinlock.ts';
export { RwLock, type RwPolicy } from './rwlock.ts';
export { TryLock, type TryLockAnswer, type LockSide } from './try_lock.ts';
export { LockStats, type LockStatsSnapshot } from './lock_stats.ts';
export { CacheLines, type CacheLineCosts, type CacheLinesOptions } from './cache_line.ts';
export { Bandwidth, type BandwidthOptions } from './bandwidth.ts';
export { Rng, RngRegistry, streamSeed } from './rng.ts';
export { Histogram, type HistogramSnapshot } from './histogram.ts';
export { Counter, TimeWeightedGauge, Series, StatsRegistry, type StatsSnapshot } from './stats.ts';
export { Fingerprint } from './fingerprint.ts';
export { checkDeterminism, type DeterminismResult } from './determinism.ts';
export type { SimObserver, Attrs, AttrValue, LockMode, ObservedLock } from './observer.ts';
export { Semaphore } from './semaphore.ts';
export { Store } from './store.ts';
export { countMetric, measureMetric, prefixedMetrics, type MetricSpec, type MetricSpecs, type Tolerance } from './metric_specs.ts';
