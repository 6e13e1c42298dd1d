import { Histogram, LockStats, type Sim } from '../sim/index.ts';
import type { Curve } from './experiment.ts';

/**
 * Lock wait distributions of a run, for every experiment without per-experiment code: every
 * waiting lock the engine knows (sim.blockers: spinlocks, mutexes, rwlocks, semaphores) keeps a
 * wait-time histogram; locks of one name (one per zone, say) are merged, and the most contended
 * names become CDF curves `lock_wait_cdf.<lock>` (wait in us against the fraction of
 * acquisitions that waited at most that long, uncontended ones included).
 */
export const MAX_LOCK_CURVES = 6;

export function lockWaitCurves(sim: Sim): Record<string, Curve> {
  const byName = new Map<string, { wait: Histogram; contended: number }>();
  for (const b of sim.blockers) {
    const stats = (b as { stats?: unknown }).stats;
    if (!(stats instanceof LockStats) || stats.contended === 0) continue;
    let entry = byName.get(b.name);
    if (entry === undefined) byName.set(b.name, (entry = { wait: new Histogram(b.name), contended: 0 }));
    entry.wait.merge(stats.wait);
    entry.contended += stats.contended;
  }
  const chosen = [...byName.entries()]
    .sort(([a, x], [b, y]) => y.contended - x.contended || (a < b ? -1 : a > b ? 1 : 0))
    .slice(0, MAX_LOCK_CURVES);
  const curves: Record<string, Curve> = {};
  for (const [name, { wait }] of chosen) {
    const cdf = wait.cdf();
    curves[`lock_wait_cdf.${name}`] = {
      x: cdf.map(([ns]) => ns / 1000),
      y: cdf.map(([, f]) => f),
      xUnit: 'us',
      yUnit: 'fraction',
      xLabel: `wait for ${name}`,
      yLabel: 'fraction of acquisitions <= wait',
    };
  }
  return curves;
}
