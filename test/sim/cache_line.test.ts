import { describe, expect, it } from 'vitest';
import { CacheLines, Cpu, HostCpus, Sim, type Proc } from '../../sim/index.ts';
import { scenarioLog } from './scenario_log.ts';

const COSTS = { sameSocketNs: 80, crossSocketNs: 200 };

/** Two vCPUs on host CPUs 0 and 1 (one socket, or one socket each), and a word they share. */
function setup(sockets: 1 | 2, enabled = true) {
  const sim = new Sim({ seed: 1 });
  const host = new HostCpus(sim, 'host', { cpus: 2, sockets });
  const vcpus = [0, 1].map((i) => new Cpu(sim, `vcpu${i}`, { host }));
  const word = new CacheLines(sim, 'td.chldcnt', { ...COSTS, sockets, enabled });
  return { sim, vcpus, word };
}

/**
 * `name` touches the word at the given times (each touch a stall for what the line costs); in
 * between it stays in a VM exit (a stall), so its vCPU keeps its host CPU (a vCPU that slept would
 * give it back, and the other vCPU could take the same host CPU, whose cache has the line).
 */
function toucher(sim: Sim, word: CacheLines, name: string, at: number[], note: (s: string) => void): Proc {
  return (function* () {
    for (const t of at) {
      if (t > sim.now) yield sim.stallFor(t - sim.now);
      const ns = word.touch();
      yield sim.stallFor(ns);
      note(`${name} touched (${ns} ns)`);
    }
  })();
}

describe('cache lines: an atomic on a word another CPU wrote last moves its line', () => {
  it('a line transfer when two CPUs alternate on one word and none when one CPU repeats', () => {
    const { sim, vcpus, word } = setup(1);
    const { log, note } = scenarioLog(sim);
    sim.spawn(toucher(sim, word, 'vcpu0', [100, 1000, 2000, 5000], note), { name: 'a', cpu: vcpus[0] });
    sim.spawn(toucher(sim, word, 'vcpu1', [3000, 4000], note), { name: 'b', cpu: vcpus[1] });
    sim.run();
    expect(log).toEqual([
      ['vcpu0 touched (0 ns)', 100],      // first touch: the line comes from memory
      ['vcpu0 touched (0 ns)', 1000],     // same CPU again: in its cache
      ['vcpu0 touched (0 ns)', 2000],
      ['vcpu1 touched (80 ns)', 3080],    // vCPU 0's host CPU wrote it last: one transfer
      ['vcpu1 touched (0 ns)', 4000],
      ['vcpu0 touched (80 ns)', 5080],    // and back
    ]);
    expect(word.transfers).toBe(2);
    expect(word.transferNs).toBe(160);
  });

  it('across sockets a transfer costs the cross-socket time', () => {
    const { sim, vcpus, word } = setup(2);
    const { log, note } = scenarioLog(sim);
    sim.spawn(toucher(sim, word, 'vcpu0', [100], note), { name: 'a', cpu: vcpus[0] });
    sim.spawn(toucher(sim, word, 'vcpu1', [1000], note), { name: 'b', cpu: vcpus[1] });
    sim.run();
    expect(log).toEqual([['vcpu0 touched (0 ns)', 100], ['vcpu1 touched (200 ns)', 1200]]);
    expect(word.crossSocketTransfers).toBe(1);
  });

  it.each([[1, 80], [2, 200]] as const)('N alternations (sockets=%i): N - 1 transfers, (N - 1) x cost of stall, and the last toucher owns the line', (sockets, cost) => {
    const N = 17;
    const gap = 1000;
    const { sim, vcpus, word } = setup(sockets);
    const at = (k: number) => 100 + k * gap;
    const evens = Array.from({ length: Math.ceil(N / 2) }, (_, i) => at(2 * i));
    const odds = Array.from({ length: Math.floor(N / 2) }, (_, i) => at(2 * i + 1));
    sim.spawn(toucher(sim, word, 'vcpu0', evens, () => {}), { name: 'a', cpu: vcpus[0] });
    sim.spawn(toucher(sim, word, 'vcpu1', odds, () => {}), { name: 'b', cpu: vcpus[1] });
    sim.run();
    expect(word.transfers).toBe(N - 1);
    expect(word.transferNs).toBe((N - 1) * cost);
    expect(word.waitNs).toBe(0);
    expect(sim.now).toBe(at(N - 1) + cost);
    expect(word.ownerOf()).toBe(0);                // touch N-1 (even index) was vCPU 0's, on host CPU 0
  });

  it('touches of one line queue: two CPUs touching at once wait for each other\'s transfer', () => {
    const sim = new Sim({ seed: 1 });
    const host = new HostCpus(sim, 'host', { cpus: 3 });
    const vcpus = [0, 1, 2].map((i) => new Cpu(sim, `vcpu${i}`, { host }));
    const word = new CacheLines(sim, 'mmu_lock', COSTS);
    const { log, note } = scenarioLog(sim);
    sim.spawn(toucher(sim, word, 'vcpu0', [100], note), { name: 'a', cpu: vcpus[0] });
    sim.spawn(toucher(sim, word, 'vcpu1', [200], note), { name: 'b', cpu: vcpus[1] });
    sim.spawn(toucher(sim, word, 'vcpu2', [200], note), { name: 'c', cpu: vcpus[2] });
    sim.run();
    // vCPU 1 moves the line 200-280; vCPU 2, asking at 200 too, gets it after: 280-360.
    expect(log).toEqual([['vcpu0 touched (0 ns)', 100], ['vcpu1 touched (80 ns)', 280], ['vcpu2 touched (160 ns)', 360]]);
    expect(word.waitNs).toBe(80);
  });

  it('enabled=false: no transfer, no wait', () => {
    const { sim, vcpus, word } = setup(2, false);
    sim.spawn(toucher(sim, word, 'vcpu0', [100, 2000], () => {}), { name: 'a', cpu: vcpus[0] });
    sim.spawn(toucher(sim, word, 'vcpu1', [1000], () => {}), { name: 'b', cpu: vcpus[1] });
    sim.run();
    expect(word.transfers).toBe(0);
    expect(sim.now).toBe(2000);
  });

  it('a run alone costs what its touches in a row cost; runs open at once make every touch a transfer, and the line caps their rate', () => {
    const sim = new Sim({ seed: 1 });
    const host = new HostCpus(sim, 'host', { cpus: 3 });
    const vcpus = [0, 1, 2].map((i) => new Cpu(sim, `vcpu${i}`, { host }));
    const word = new CacheLines(sim, 'td.chldcnt', COSTS);
    const { log, note } = scenarioLog(sim);
    const run = (name: string, start: number, n: number, span: number) => (function* (): Proc {
      yield sim.stallFor(start);
      const socket = word.currentSocket();
      const ns = word.beginRun(0, n, 0, span);
      yield sim.stallFor(span + ns);
      word.endRun(0, socket, n);
      note(`${name} run of ${n} (${ns} ns)`);
    })();
    sim.spawn(run('vcpu0', 1, 10, 1000), { name: 'a', cpu: vcpus[0] });
    sim.spawn(run('vcpu1', 5000, 10, 1000), { name: 'b', cpu: vcpus[1] });          // alone: one transfer
    sim.spawn(run('vcpu2', 5500, 100, 1000), { name: 'c', cpu: vcpus[2] });         // overlaps vCPU 1's run
    sim.run();
    expect(log).toEqual([
      ['vcpu0 run of 10 (0 ns)', 1001],
      ['vcpu1 run of 10 (80 ns)', 6080],
      // vCPU 1's run is open: all 100 touches move the line, 8000 ns of line time from 5500;
      // the run spans 1000 ns of its own work, so it ends at 5500 + 1000 + 8000.
      ['vcpu2 run of 100 (8000 ns)', 14500],
    ]);
    expect(word.transfers).toBe(101);
    word.checkInvariants();
  });

  it('runs that ask more of a line than it serves wait for it', () => {
    const sim = new Sim({ seed: 1 });
    const host = new HostCpus(sim, 'host', { cpus: 4 });
    const vcpus = [0, 1, 2, 3].map((i) => new Cpu(sim, `vcpu${i}`, { host }));
    const word = new CacheLines(sim, 'mmu_lock', COSTS);
    const ends: number[] = [];
    vcpus.forEach((cpu, i) => sim.spawn((function* (): Proc {
      yield sim.stallFor(1);
      const socket = word.currentSocket();
      const ns = word.beginRun(0, 100, 0, 1000);      // 100 touches in 1 us: far more than 1 per 80 ns
      yield sim.stallFor(1000 + ns);
      word.endRun(0, socket, 100);
      ends.push(sim.now);
    })(), { name: `r${i}`, cpu }));
    sim.run();
    // The first run is alone (no transfer); the other three each move the line 100 times, one
    // after another on the line: the last ends when the line has served 300 transfers.
    expect(ends).toEqual([1001, 1 + 1000 + 8000, 1 + 16000, 1 + 24000]);
  });
});
