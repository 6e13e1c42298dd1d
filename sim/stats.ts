import { Histogram, type HistogramSnapshot } from './histogram.ts';
import type { Sim } from './sim.ts';

export { Histogram };

export class Counter {
  value = 0;
  constructor(readonly name: string) {}
  inc(by = 1): void {
    this.value += by;
  }
}

/** A value that holds between changes; its mean is weighted by virtual time. */
export class TimeWeightedGauge {
  value = 0;
  max = 0;
  private area = 0;
  private since: number;
  private readonly start: number;

  constructor(
    readonly name: string,
    private readonly sim: Sim,
  ) {
    this.since = sim.now;
    this.start = sim.now;
  }

  set(v: number): void {
    const now = this.sim.now;
    this.area += this.value * (now - this.since);
    this.since = now;
    this.value = v;
    if (v > this.max) this.max = v;
  }

  add(delta: number): void {
    this.set(this.value + delta);
  }

  mean(): number {
    const now = this.sim.now;
    const span = now - this.start;
    if (span === 0) return this.value;
    return (this.area + this.value * (now - this.since)) / span;
  }
}

/** (virtual time, value) samples. */
export class Series {
  readonly times: number[] = [];
  readonly values: number[] = [];
  constructor(readonly name: string) {}
  record(time: number, value: number): void {
    this.times.push(time);
    this.values.push(value);
  }
}

export interface StatsSnapshot {
  counters: Record<string, number>;
  histograms: Record<string, HistogramSnapshot>;
  gauges: Record<string, { value: number; mean: number; max: number }>;
  series: Record<string, { t: number[]; v: number[] }>;
}

/** Named statistics of a run; snapshot() is plain JSON with names in sorted order. */
export class StatsRegistry {
  private readonly counters = new Map<string, Counter>();
  private readonly histograms = new Map<string, Histogram>();
  private readonly gauges = new Map<string, TimeWeightedGauge>();
  private readonly seriesByName = new Map<string, Series>();

  constructor(private readonly sim: Sim) {}

  counter(name: string): Counter {
    return getOrMake(this.counters, name, () => new Counter(name));
  }

  histogram(name: string): Histogram {
    return getOrMake(this.histograms, name, () => new Histogram(name));
  }

  gauge(name: string): TimeWeightedGauge {
    return getOrMake(this.gauges, name, () => new TimeWeightedGauge(name, this.sim));
  }

  series(name: string): Series {
    return getOrMake(this.seriesByName, name, () => new Series(name));
  }

  /** Samples fn() into a series every intervalNs of virtual time while other events remain. */
  sample(name: string, intervalNs: number, fn: () => number): void {
    const s = this.series(name);
    const tick = () => {
      s.record(this.sim.now, fn());
      if (this.sim.queue.size > 0) this.sim.schedule(intervalNs, tick, `sample ${name}`);
    };
    this.sim.schedule(0, tick, `sample ${name}`);
  }

  snapshot(): StatsSnapshot {
    return {
      counters: sortedRecord(this.counters, (c) => c.value),
      histograms: sortedRecord(this.histograms, (h) => h.snapshot()),
      gauges: sortedRecord(this.gauges, (g) => ({ value: g.value, mean: g.mean(), max: g.max })),
      series: sortedRecord(this.seriesByName, (s) => ({ t: s.times, v: s.values })),
    };
  }
}

function getOrMake<T>(map: Map<string, T>, name: string, make: () => T): T {
  let v = map.get(name);
  if (v === undefined) {
    v = make();
    map.set(name, v);
  }
  return v;
}

function sortedRecord<T, U>(map: Map<string, T>, f: (t: T) => U): Record<string, U> {
  const out: Record<string, U> = {};
  for (const k of [...map.keys()].sort()) out[k] = f(map.get(k)!);
  return out;
}
