import { describe, expect, it } from 'vitest';
import { Mutex, Semaphore, Sim, type Proc } from '../../sim/index.ts';

// One model time unit is 1 ms of virtual time, so rounding to integer ns is negligible.
const UNIT = 1_000_000;
const SEEDS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];

/** Mean and 95% confidence half-width over runs (Student t, 9 degrees of freedom). */
function interval(xs: number[]): { mean: number; half: number } {
  const n = xs.length;
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  const variance = xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1);
  const t975 = 2.262; // t(0.975, 9)
  return { mean, half: (t975 * Math.sqrt(variance)) / Math.sqrt(n) };
}

function expectInside(xs: number[], exact: number): void {
  const { mean, half } = interval(xs);
  expect(Math.abs(mean - exact), `mean ${mean} +- ${half} vs exact ${exact}`).toBeLessThanOrEqual(half);
}

/** An M/M/c queue: Poisson arrivals, exponential service, c servers, FIFO. */
function mmc(seed: number, lambda: number, mu: number, c: number, customers: number) {
  const sim = new Sim({ seed });
  const servers = new Semaphore(sim, 'servers', c);
  const arrivals = sim.rng('mmc.arrivals');
  const service = sim.rng('mmc.service');
  const warmup = customers / 10;
  let waitSum = 0;
  let measured = 0;
  let waited = 0;
  function* customer(index: number): Proc {
    const arrived = sim.now;
    yield servers.acquire();
    if (index >= warmup) {
      const w = sim.now - arrived;
      waitSum += w;
      measured++;
      if (w > 0) waited++;
    }
    yield sim.sleep(service.exponential(UNIT / mu));
    servers.release();
  }
  function* source(): Proc {
    for (let i = 0; i < customers; i++) {
      yield sim.sleep(arrivals.exponential(UNIT / lambda));
      sim.spawn(customer(i), 'customer');
    }
  }
  sim.spawn(source(), 'source');
  sim.run();
  return { meanWait: waitSum / measured / UNIT, pWait: waited / measured, utilisation: servers.utilisation() };
}

describe('closed-form queueing oracles, inside the 95% interval over 10 seeds', () => {
  it('M/M/1 (lambda 0.9, mu 1): utilisation 0.9, mean wait in queue 9', () => {
    const runs = SEEDS.map((s) => mmc(s, 0.9, 1, 1, 200_000));
    expectInside(runs.map((r) => r.utilisation), 0.9);
    expectInside(runs.map((r) => r.meanWait), 9);
  });

  it('M/M/4 (lambda 3.2, mu 1): P(wait) 0.596432 (Erlang C), mean wait 0.745541', () => {
    const runs = SEEDS.map((s) => mmc(s, 3.2, 1, 4, 200_000));
    expectInside(runs.map((r) => r.pWait), 0.596432);
    expectInside(runs.map((r) => r.meanWait), 0.745541);
    expectInside(runs.map((r) => r.utilisation), 0.8);
  });

  it('mutex as a machine-repairman model (64 workers, think 63, hold 1): utilisation 0.915225, mean wait 5.928164', () => {
    const runs = SEEDS.map((seed) => {
      const sim = new Sim({ seed });
      const lock = new Mutex(sim, 'lock');
      const end = 100_000 * UNIT;
      let held = 0;
      for (let w = 0; w < 64; w++) {
        const think = sim.rng(`worker.${w}.think`);
        const hold = sim.rng(`worker.${w}.hold`);
        sim.spawn((function* (): Proc {
          for (;;) {
            yield sim.sleep(think.exponential(63 * UNIT));
            yield lock.acquire();
            const h = Math.round(hold.exponential(UNIT));
            const start = sim.now;
            yield sim.sleep(h);
            held += Math.min(sim.now, end) - Math.min(start, end);
            lock.release();
          }
        })(), { name: `worker${w}`, daemon: true });
      }
      sim.run({ until: end });
      const s = lock.stats;
      return { utilisation: held / end, meanWait: s.wait.mean() / UNIT, pWait: s.contended / s.acquisitions };
    });
    expectInside(runs.map((r) => r.utilisation), 0.915225);
    expectInside(runs.map((r) => r.meanWait), 5.928164);
    expectInside(runs.map((r) => r.pWait), 0.905902);
  });
});
