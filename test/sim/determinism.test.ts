import { describe, expect, it } from 'vitest';
import { Cpu, Mutex, Priority, Sim, checkDeterminism, MS, US, type Proc } from '../../sim/index.ts';

/** A small contended scenario: 4 threads on 2 CPUs, a mutex, background work, random waits. */
function scenario(sim: Sim): void {
  const cpus = [new Cpu(sim, 'cpu0'), new Cpu(sim, 'cpu1')];
  const lock = new Mutex(sim, 'lock');
  for (let i = 0; i < 4; i++) {
    const rng = sim.rng(`thread.${i}`);
    sim.spawn((function* (): Proc {
      for (let k = 0; k < 200; k++) {
        yield sim.compute(rng.exponential(20 * US));
        yield lock.acquire();
        sim.stats.histogram('hold_ns').record(0);
        yield sim.sleep(rng.exponential(5 * US));
        lock.release();
      }
    })(), { name: `t${i}`, cpu: cpus[i % 2], priority: i === 3 ? Priority.Background : Priority.Normal });
  }
  sim.run();
}

function runOnce(seed: number) {
  const sim = new Sim({ seed });
  scenario(sim);
  return { fingerprint: sim.fingerprint.hex(), now: sim.now, stats: JSON.stringify(sim.stats.snapshot()), lock: sim.blockers.map((b) => b.name) };
}

describe('determinism', () => {
  it('same seed: same fingerprint, virtual time and statistics', () => {
    expect(runOnce(5)).toEqual(runOnce(5));
  });

  it('another seed: a different fingerprint and end time', () => {
    const a = runOnce(5);
    const b = runOnce(6);
    expect(b.fingerprint).not.toBe(a.fingerprint);
    expect(b.now).not.toBe(a.now);
  });

  it('checkDeterminism passes a deterministic scenario', () => {
    const r = checkDeterminism(3, scenario);
    expect(r.deterministic).toBe(true);
    expect(r.fingerprints[0]).toBe(r.fingerprints[1]);
    expect(r.events[0]).toBeGreaterThan(1000);
  });

  it('checkDeterminism names the first diverging event', () => {
    let run = 0;
    const r = checkDeterminism(3, (sim) => {
      const extra = run++ === 1; // state leaking between runs: the second run sleeps longer once
      sim.spawn((function* (): Proc {
        yield sim.sleep(1 * MS);
        yield sim.sleep(extra ? 3 * MS : 2 * MS);
        yield sim.sleep(1 * MS);
      })(), 'leaky');
      sim.run();
    });
    expect(r.deterministic).toBe(false);
    expect(r.divergence).toEqual({
      index: 2,
      first: 't=3000000ns seq=2 process leaky',
      second: 't=4000000ns seq=2 process leaky',
    });
  });

  it('counts ties: events at equal times run in scheduling order', () => {
    const sim = new Sim({ seed: 1 });
    const order: string[] = [];
    for (const name of ['a', 'b', 'c']) {
      sim.spawn((function* (): Proc {
        yield sim.sleep(10);
        order.push(name);
      })(), name);
    }
    sim.run();
    expect(order).toEqual(['a', 'b', 'c']);
    expect(sim.ties).toBe(4); // 3 starts at t=0 (2 ties) and 3 wake-ups at t=10 (2 ties)
  });
});

describe('observer hooks', () => {
  it('opSpan records a finished child op with its own times and refuses times after now', () => {
    const sim = new Sim({ seed: 1 });
    const seen: [string, number, number][] = [];
    sim.observer = {
      processStart() {}, processEnd() {}, opBegin: () => 1, opEnd() {}, lockWait() {}, lockAcquire() {},
      lockRelease() {}, lockBusy() {}, instant() {},
      opSpan: (_p, name, _a, _l, _actor, start, end) => void seen.push([name, start, end]),
    };
    sim.spawn((function* (): Proc {
      yield sim.sleep(100);
      sim.opSpan('TDH.MEM.PAGE.AUG', 20, 70);
      expect(() => sim.opSpan('late', 50, 150)).toThrow(/startNs <= endNs <= now/);
    })(), 'vcpu');
    sim.run();
    expect(seen).toEqual([['TDH.MEM.PAGE.AUG', 20, 70]]);
  });
});
