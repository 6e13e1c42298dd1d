import type { Sim } from '../sim/index.ts';
import { defaultTraceOptions, type TraceLevel } from './options.ts';
import { startTracing, type TraceSession } from './session.ts';

/**
 * Tracing as the benchmark measures it: the observer and the SDK at `level` (default op), spans
 * kept in memory up to the default budget, no file and no network. Call before the workload
 * runs; `await session.finish()` afterwards counts the span export in the measured time.
 */
export function traceBenchObserver(sim: Sim, level: TraceLevel = 'op'): TraceSession {
  return startTracing(sim, { experiment: 'bench', params: {}, seed: sim.seed }, { ...defaultTraceOptions, files: [], level });
}
