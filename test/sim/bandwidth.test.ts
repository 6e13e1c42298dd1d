import { describe, expect, it } from 'vitest';
import { Bandwidth, Sim, MiB, type Proc } from '../../sim/index.ts';

const GBps = 1e9;

function runTransfers(k: number, cap: number, bandwidth: number) {
  const sim = new Sim({ seed: 1 });
  const bw = new Bandwidth(sim, 'dram', bandwidth, { perTransferBytesPerSec: cap });
  const bytes = 64 * MiB;
  for (let i = 0; i < k; i++) {
    sim.spawn((function* (): Proc {
      yield bw.transfer(bytes);
    })(), `t${i}`);
  }
  sim.run();
  return (k * bytes) / (sim.now / 1e9); // aggregate bytes per second
}

describe('memory bandwidth (processor sharing)', () => {
  it.each([1, 2, 4, 8, 16])('%i parallel transfers get min(k x cap, bandwidth)', (k) => {
    const cap = 10 * GBps;
    const total = 50 * GBps;
    const rate = runTransfers(k, cap, total);
    expect(rate / Math.min(k * cap, total)).toBeCloseTo(1, 6);
  });

  it('is max-min fair: a capped transfer leaves the rest to the others', () => {
    const sim = new Sim({ seed: 1 });
    const bw = new Bandwidth(sim, 'dram', 30 * GBps);
    const done: [string, number][] = [];
    sim.spawn((function* (): Proc {
      yield bw.transfer(1e9, 5 * GBps);
      done.push(['slow', sim.now]);
    })(), 'slow');
    sim.spawn((function* (): Proc {
      yield bw.transfer(1e9);
      done.push(['fast', sim.now]);
    })(), 'fast');
    sim.run();
    // fast gets 25 GB/s: 1 GB in 40 ms; then slow alone continues at its 5 GB/s cap.
    expect(done).toEqual([['fast', 40_000_000], ['slow', 200_000_000]]);
  });

  it('recomputes shares when a transfer arrives mid-way', () => {
    const sim = new Sim({ seed: 1 });
    const bw = new Bandwidth(sim, 'dram', 10 * GBps);
    const done: number[] = [];
    sim.spawn((function* (): Proc {
      yield bw.transfer(1e9); // alone for 50 ms (0.5 GB), then shares 5 GB/s
      done.push(sim.now);
    })(), 'first');
    sim.spawn((function* (): Proc {
      yield sim.sleep(50_000_000);
      yield bw.transfer(0.5e9);
      done.push(sim.now);
    })(), 'second');
    sim.run();
    expect(done).toEqual([150_000_000, 150_000_000]);
    expect(bw.utilisation()).toBeCloseTo(1, 6);
  });
});
