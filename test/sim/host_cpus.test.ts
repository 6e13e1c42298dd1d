import { describe, expect, it } from 'vitest';
import {
  Cpu, HostCpus, Mutex, Priority, Semaphore, Sim, Spinlock, Interrupt, checkDeterminism, defaultHostSliceNs, MS, US,
  type CpuAccounting, type HostCpusOptions, type Proc, type Process,
} from '../../sim/index.ts';
import { scenarioLog } from './scenario_log.ts';

/** busy + spin + stall + idle + steal: every nanosecond of a CPU's life is in exactly one state. */
function total(a: CpuAccounting): number {
  return a.busyNs + a.spinNs + a.stallNs + a.idleNs + a.stealNs;
}

/**
 * Three vCPUs, each with a normal and a background thread, computing, sleeping, taking VM exits
 * (stallFor), contending on a spinlock (waiters spin) and on a mutex: every way a CPU can be
 * held or left. `pool` backs the vCPUs with host CPUs.
 */
function guestScenario(sim: Sim, pool?: HostCpusOptions) {
  const host = pool === undefined ? undefined : new HostCpus(sim, 'host', pool);
  const vcpus = [0, 1, 2].map((i) => new Cpu(sim, `vcpu${i}`, { sliceNs: 1 * MS, host }));
  const lock = new Spinlock(sim, 'zone->lock');
  const mmu = new Mutex(sim, 'kvm->slots_lock');
  const { log, note } = scenarioLog(sim);
  vcpus.forEach((cpu, i) => {
    for (const priority of [Priority.Normal, Priority.Background]) {
      const name = `vcpu${i}.${priority === Priority.Normal ? 'app' : 'acceptor'}`;
      const rng = sim.rng(`test.${name}`);
      sim.spawn((function* (): Proc {
        for (let k = 0; k < 20; k++) {
          yield sim.compute(rng.exponential(300 * US));
          yield lock.acquire({ irqsave: true });
          yield sim.compute(rng.exponential(20 * US));
          lock.release({ irqrestore: true });
          yield sim.stallFor(rng.exponential(10 * US));
          yield mmu.acquire();
          yield sim.compute(rng.exponential(5 * US));
          mmu.release();
          yield sim.sleep(rng.exponential(500 * US));
        }
        note(`${name} done`);
      })(), { name, cpu, priority });
    }
  });
  sim.run();
  sim.finishRun();
  return { host, vcpus, log };
}

describe('host CPUs: a pool with a CPU for every vCPU changes nothing', () => {
  function run(pool?: HostCpusOptions) {
    const sim = new Sim({ seed: 7 });
    const { host, vcpus, log } = guestScenario(sim, pool);
    return { sim, host, vcpus, log };
  }

  it.each([
    ['3 host CPUs', { cpus: 3 }],
    ['2 cores x 2 threads', { cpus: 4, threadsPerCore: 2 }],
    ['16 host CPUs on 2 sockets', { cpus: 16, threadsPerCore: 2, sockets: 2 }],
  ] as [string, HostCpusOptions][])('%s: same log, virtual times, fingerprint and accounting as without a pool', (_, pool) => {
    const bare = run();
    const pooled = run(pool);
    expect(pooled.log).toEqual(bare.log);
    expect(pooled.log).toHaveLength(6);
    expect(pooled.sim.now).toBe(bare.sim.now);
    expect(pooled.sim.eventsExecuted).toBe(bare.sim.eventsExecuted);
    expect(pooled.sim.fingerprint.hex()).toBe(bare.sim.fingerprint.hex());
    expect(pooled.vcpus.map((c) => c.accounting())).toEqual(bare.vcpus.map((c) => c.accounting()));
    expect(pooled.vcpus.every((c) => c.accounting().stealNs === 0)).toBe(true);
    // The pool was used all along: it held exactly the vCPUs' non-idle time.
    const held = pooled.vcpus.reduce((s, c) => s + c.accounting().busyNs + c.accounting().spinNs + c.accounting().stallNs, 0);
    expect(pooled.host!.busyNs()).toBe(held);
    expect(pooled.host!.stats.contended).toBe(0);
  });
});

describe('host CPUs: time slices', () => {
  it('2 vCPUs computing 10 ms each on 1 host CPU with 3 ms slices: round robin, done at 19 and 20 ms', () => {
    const sim = new Sim({ seed: 1 });
    const host = new HostCpus(sim, 'host', { cpus: 1, sliceNs: 3 * MS });
    const vcpus = [0, 1].map((i) => new Cpu(sim, `vcpu${i}`, { host }));
    const { log, note } = scenarioLog(sim);
    vcpus.forEach((cpu, i) => sim.spawn((function* (): Proc {
      yield sim.compute(10 * MS);
      note(`vcpu${i} done`);
    })(), { name: `vcpu${i}`, cpu }));
    sim.run();
    // vcpu0 runs 0-3, 6-9, 12-15 and its last 1 ms at 18-19; vcpu1 runs 3-6, 9-12, 15-18 and,
    // once vcpu0 halts, 19-20. In general the first to finish is done at 2W - (W mod S) when
    // W mod S != 0 (here 20 - 1), the other at 2W.
    expect(log).toEqual([['vcpu0 done', 19 * MS], ['vcpu1 done', 20 * MS]]);
    sim.finishRun();
    const [a0, a1] = vcpus.map((c) => c.accounting());
    expect(a0).toEqual({ busyNs: 10 * MS, spinNs: 0, stallNs: 0, idleNs: 1 * MS, stealNs: 9 * MS });
    expect(a1).toEqual({ busyNs: 10 * MS, spinNs: 0, stallNs: 0, idleNs: 0, stealNs: 10 * MS });
    // Six slice ends with someone waiting (3, 6, ..., 18 ms), each a preemption and a hand-over.
    expect(host.preemptions).toBe(6);
    expect(host.stats.acquisitions).toBe(8);
    expect(host.stats.contended).toBe(7);
    expect(host.waitNs()).toBe(19 * MS); // = the steal time of both
    expect(host.stats.wait.max).toBe(3 * MS);
    expect(host.migrations).toBe(0);
    expect(host.accounting()).toEqual({ busyNs: 20 * MS, idleNs: 0, perCpu: [{ busyNs: 20 * MS, idleNs: 0 }] });
  });

  it('3 vCPUs on 2 host CPUs: one holder yields per waiter, nobody idles, done at total work / 2', () => {
    const sim = new Sim({ seed: 1 });
    const host = new HostCpus(sim, 'host', { cpus: 2, sliceNs: 3 * MS });
    const { log, note } = scenarioLog(sim);
    const vcpus = [0, 1, 2].map((i) => new Cpu(sim, `vcpu${i}`, { host }));
    vcpus.forEach((cpu, i) => sim.spawn((function* (): Proc {
      yield sim.compute(6 * MS);
      note(`vcpu${i} done on host CPU ${cpu.hostCpu}`);
    })(), { name: `vcpu${i}`, cpu }));
    sim.run();
    // 0-3: vcpu0 and vcpu1 run, vcpu2 waits. At 3 both slices end: vcpu0 (whose burst event
    // comes first) yields to vcpu2; vcpu1 runs on, since its only waiter, vcpu0, began waiting
    // at that very instant. At 6 vcpu2's slice ends with vcpu0 waiting: vcpu0 gets host CPU 0
    // back; vcpu1 is done at the same instant and vcpu2 takes its host CPU 1 (a migration).
    expect(log).toEqual([['vcpu1 done on host CPU 1', 6 * MS], ['vcpu0 done on host CPU 0', 9 * MS], ['vcpu2 done on host CPU 1', 9 * MS]]);
    expect(host.migrations).toBe(1);
    expect(host.preemptions).toBe(2);
    expect(host.accounting().idleNs).toBe(0);
  });

  it('a waking vCPU does not preempt: it waits for the end of the running slice', () => {
    const sim = new Sim({ seed: 1 });
    const host = new HostCpus(sim, 'host', { cpus: 1, sliceNs: 3 * MS });
    const { log, note } = scenarioLog(sim);
    sim.spawn((function* (): Proc {
      yield sim.compute(10 * MS);
      note('vcpu0 done');
    })(), { name: 'vcpu0', cpu: new Cpu(sim, 'vcpu0', { host }) });
    sim.spawn((function* (): Proc {
      yield sim.sleep(4 * MS);
      yield sim.compute(1 * MS);
      note('vcpu1 done');
    })(), { name: 'vcpu1', cpu: new Cpu(sim, 'vcpu1', { host }) });
    sim.run();
    // vcpu0's slices run 0-3, 3-6 (renewed, nobody waited at 3): vcpu1 waits from 4 to 6.
    expect(log).toEqual([['vcpu1 done', 7 * MS], ['vcpu0 done', 11 * MS]]);
  });

  it('the default slice is EEVDF base slice scaled by 1 + ilog2(min(cpus, 8))', () => {
    expect([1, 2, 3, 4, 7, 8, 64].map(defaultHostSliceNs)).toEqual([0.75, 1.5, 1.5, 2.25, 2.25, 3, 3].map((ms) => ms * MS));
    expect(new HostCpus(new Sim({ seed: 1 }), 'host', { cpus: 64 }).sliceNs).toBe(3 * MS);
  });
});

describe('host CPUs: halts and exits', () => {
  it('a vCPU that halts gives its host CPU back at once, to the vCPU waiting for it', () => {
    const sim = new Sim({ seed: 1 });
    const host = new HostCpus(sim, 'host', { cpus: 1, sliceNs: 3 * MS });
    const vcpus = [0, 1].map((i) => new Cpu(sim, `vcpu${i}`, { host }));
    const { log, note } = scenarioLog(sim);
    sim.spawn((function* (): Proc {
      yield sim.compute(2 * MS);
      note(`vcpu0 halts (host CPU 0 held by ${host.holderOf(0)?.name})`);
      yield sim.sleep(10 * MS); // HLT: nothing runnable on vcpu0
      note(`vcpu0 woken (host CPU 0 held by ${host.holderOf(0)?.name ?? 'nobody'})`);
      yield sim.compute(1 * MS);
      note('vcpu0 done');
    })(), { name: 'vcpu0', cpu: vcpus[0] });
    sim.spawn((function* (): Proc {
      yield sim.sleep(1 * MS);
      yield sim.compute(5 * MS);
      note('vcpu1 done');
    })(), { name: 'vcpu1', cpu: vcpus[1] });
    // Looks at 2 ms, after vcpu0's burst end (scheduled at 0): scheduled from 1 ms.
    sim.schedule(1 * MS, () => sim.schedule(1 * MS, () => note(`host CPU 0 held by ${host.holderOf(0)?.name}, ${host.waiting} waiting`)));
    sim.run();
    sim.finishRun();
    expect(log).toEqual([
      ['vcpu0 halts (host CPU 0 held by vcpu0)', 2 * MS],
      ['host CPU 0 held by vcpu1, 0 waiting', 2 * MS],
      ['vcpu1 done', 7 * MS],
      ['vcpu0 woken (host CPU 0 held by nobody)', 12 * MS],
      ['vcpu0 done', 13 * MS],
    ]);
    expect(vcpus[1]!.accounting().stealNs).toBe(1 * MS);
    expect(host.accounting()).toEqual({ busyNs: 8 * MS, idleNs: 5 * MS, perCpu: [{ busyNs: 8 * MS, idleNs: 5 * MS }] });
  });

  it('a holder stalled in a VM exit is not preempted mid-exit: it yields at its next compute burst', () => {
    const sim = new Sim({ seed: 1 });
    const host = new HostCpus(sim, 'host', { cpus: 1, sliceNs: 3 * MS });
    const vcpus = [0, 1].map((i) => new Cpu(sim, `vcpu${i}`, { host }));
    const { log, note } = scenarioLog(sim);
    sim.spawn((function* (): Proc {
      yield sim.compute(1 * MS);
      yield sim.stallFor(10 * MS); // a long VM exit: its slice ends at 3 ms, mid-exit
      note('vcpu0 exit handled');
      yield sim.compute(1 * MS);
      note('vcpu0 done');
    })(), { name: 'vcpu0', cpu: vcpus[0] });
    sim.spawn((function* (): Proc {
      yield sim.sleep(0.5 * MS);
      yield sim.compute(2 * MS);
      note('vcpu1 done');
    })(), { name: 'vcpu1', cpu: vcpus[1] });
    sim.run();
    sim.finishRun();
    expect(log).toEqual([['vcpu0 exit handled', 11 * MS], ['vcpu1 done', 13 * MS], ['vcpu0 done', 14 * MS]]);
    expect(vcpus[0]!.accounting()).toEqual({ busyNs: 2 * MS, spinNs: 0, stallNs: 10 * MS, idleNs: 0, stealNs: 2 * MS });
    expect(vcpus[1]!.accounting()).toEqual({ busyNs: 2 * MS, spinNs: 0, stallNs: 0, idleNs: 1.5 * MS, stealNs: 10.5 * MS });
    expect(host.preemptions).toBe(1);
  });

  it('lock-holder preemption: a vCPU spinning on the lock is preempted at its slice end, so the holder gets to finish', () => {
    const sim = new Sim({ seed: 1 });
    const host = new HostCpus(sim, 'host', { cpus: 1, sliceNs: 3 * MS });
    const vcpus = [0, 1].map((i) => new Cpu(sim, `vcpu${i}`, { host }));
    const lock = new Spinlock(sim, 'zone->lock');
    const { log, note } = scenarioLog(sim);
    sim.spawn((function* (): Proc {
      yield lock.acquire({ irqsave: true });
      yield sim.compute(5 * MS); // the host preempts it at 3 ms, lock held
      note('vcpu0 releases');
      lock.release({ irqrestore: true });
    })(), { name: 'vcpu0', cpu: vcpus[0] });
    sim.spawn((function* (): Proc {
      yield sim.sleep(1 * MS);
      yield lock.acquire({ irqsave: true }); // runs at 3 ms, spins until its slice ends at 6
      note('vcpu1 got the lock');
      yield sim.compute(1 * MS);
      lock.release({ irqrestore: true });
      note('vcpu1 done');
    })(), { name: 'vcpu1', cpu: vcpus[1] });
    sim.run();
    sim.finishRun();
    // The lock is handed to vcpu1 at 8 ms while vcpu1's vCPU waits for the host CPU: it takes
    // the lock when vcpu0 halts and gives the host CPU back, at the same instant.
    expect(log).toEqual([['vcpu0 releases', 8 * MS], ['vcpu1 got the lock', 8 * MS], ['vcpu1 done', 9 * MS]]);
    expect(vcpus[1]!.accounting()).toEqual({ busyNs: 1 * MS, spinNs: 3 * MS, stallNs: 0, idleNs: 1 * MS, stealNs: 4 * MS });
    expect(host.preemptions).toBe(2);
    expect(lock.stats.wait.max).toBe(5 * MS); // from when it began to spin, at 3 ms
  });

  it('a thread interrupted while its vCPU waits for a host CPU leaves the vCPU, which leaves the run queue', () => {
    const sim = new Sim({ seed: 1 });
    const host = new HostCpus(sim, 'host', { cpus: 1, sliceNs: 3 * MS });
    const vcpus = [0, 1].map((i) => new Cpu(sim, `vcpu${i}`, { host }));
    const { log, note } = scenarioLog(sim);
    sim.spawn((function* (): Proc {
      yield sim.compute(10 * MS);
      note('vcpu0 done');
    })(), { name: 'vcpu0', cpu: vcpus[0] });
    const waiter = sim.spawn((function* (): Proc {
      try {
        yield sim.compute(1 * MS);
      } catch (e) {
        if (!(e instanceof Interrupt)) throw e;
        note(`vcpu1 interrupted, ${host.waiting} waiting`);
      }
    })(), { name: 'vcpu1', cpu: vcpus[1] });
    sim.schedule(1 * MS, () => waiter.interrupt('signal'), 'signal');
    sim.run();
    sim.finishRun();
    // Nobody waits at vcpu0's slice ends: it is never preempted.
    expect(log).toEqual([['vcpu1 interrupted, 0 waiting', 1 * MS], ['vcpu0 done', 10 * MS]]);
    expect(vcpus[1]!.accounting()).toEqual({ busyNs: 0, spinNs: 0, stallNs: 0, idleNs: 9 * MS, stealNs: 1 * MS });
    expect(host.preemptions).toBe(0);
  });

  it('a run that ends with a vCPU waiting for a host CPU reports it in the deadlock', () => {
    const sim = new Sim({ seed: 3 });
    const host = new HostCpus(sim, 'host', { cpus: 1, sliceNs: 3 * MS });
    const exit = sim.event('ept violation handled');
    sim.spawn((function* (): Proc {
      yield sim.stall(exit); // holds the only host CPU until vcpu1 runs
    })(), { name: 'vcpu0', cpu: new Cpu(sim, 'vcpu0', { host }) });
    sim.spawn((function* (): Proc {
      yield sim.compute(1 * US);
      exit.succeed();
    })(), { name: 'vcpu1', cpu: new Cpu(sim, 'vcpu1', { host }) });
    expect(() => sim.run()).toThrow(
      /deadlock: 2 process\(es\) blocked[\s\S]*vcpu0#0 waits for stall on ept violation handled[\s\S]*vcpu1#1 waits for nothing since t=0ns; its CPU vcpu1 waits since t=0ns for host CPUs host \(1\/1 in use: vcpu0 on 0; 1 waiting: vcpu1 since t=0ns\)/,
    );
    expect(sim.blockers).toContain(host);
  });

  it('spinners that can only take turns on the host CPUs end the run with a deadlock report', () => {
    const sim = new Sim({ seed: 4 });
    const host = new HostCpus(sim, 'host', { cpus: 1, sliceNs: 3 * MS });
    const vcpus = [0, 1].map((i) => new Cpu(sim, `vcpu${i}`, { host }));
    const accepted = [sim.event('range 0 accepted'), sim.event('range 1 accepted')];
    // Each vCPU spins for a range its own background thread would accept, which never gets the
    // vCPU: the host would rotate the two spinners forever.
    vcpus.forEach((cpu, i) => {
      sim.spawn((function* (): Proc {
        yield sim.spinUntil(accepted[i]!);
      })(), { name: `vcpu${i}.waiter`, cpu });
      sim.spawn((function* (): Proc {
        yield sim.compute(1 * US);
        accepted[i]!.succeed();
      })(), { name: `vcpu${i}.acceptor`, cpu, priority: Priority.Background });
    });
    expect(() => sim.run()).toThrow(/deadlock: 4 process\(es\) blocked[\s\S]*vcpu0.waiter#0 waits for spin on range 0 accepted[\s\S]*t=6000000ns/);
    expect(host.preemptions).toBe(1); // vcpu0 at 3 ms; at 6 ms only spinners were left
  });
});

describe('host CPUs: placement', () => {
  it('onHostCpuChange is called with (from, to) on a migration, and its ns delay the thread', () => {
    const sim = new Sim({ seed: 1 });
    const host = new HostCpus(sim, 'host', { cpus: 2, sliceNs: 3 * MS });
    const changes: [string, number, number][] = [];
    const vcpus = [0, 1].map((i) => new Cpu(sim, `vcpu${i}`, {
      host,
      onHostCpuChange: (from, to) => {
        changes.push([`vcpu${i}`, from, to]);
        return 100 * US; // tdx_vcpu_load(): TDH.VP.FLUSH on the old CPU by IPI
      },
    }));
    const { log, note } = scenarioLog(sim);
    sim.spawn((function* (): Proc {
      yield sim.compute(1 * MS); // on host CPU 0
      yield sim.sleep(1 * MS);
      yield sim.compute(1 * MS); // host CPU 0 is vcpu1's now: on 1, after the flush
      note(`vcpu0 done on host CPU ${vcpus[0]!.hostCpu}`);
    })(), { name: 'vcpu0', cpu: vcpus[0] });
    sim.spawn((function* (): Proc {
      yield sim.sleep(1.5 * MS);
      yield sim.compute(2 * MS); // first grant: the lowest free CPU, 0; not a change
      note(`vcpu1 done on host CPU ${vcpus[1]!.hostCpu}`);
    })(), { name: 'vcpu1', cpu: vcpus[1] });
    sim.run();
    sim.finishRun();
    expect(changes).toEqual([['vcpu0', 0, 1]]);
    expect(log).toEqual([['vcpu0 done on host CPU 1', 3.1 * MS], ['vcpu1 done on host CPU 0', 3.5 * MS]]);
    expect(vcpus[0]!.accounting().stallNs).toBe(100 * US);
    expect(host.migrations).toBe(1);
  });

  it('SMT: two vCPUs waking on an idle machine of 2 cores x 2 threads land on different cores', () => {
    const sim = new Sim({ seed: 1 });
    const host = new HostCpus(sim, 'host', { cpus: 4, threadsPerCore: 2 });
    const vcpus = [0, 1].map((i) => new Cpu(sim, `vcpu${i}`, { host }));
    const placed: number[] = [];
    vcpus.forEach((cpu, i) => sim.spawn((function* (): Proc {
      yield sim.compute(1 * MS);
      placed.push(cpu.hostCpu);
    })(), { name: `vcpu${i}`, cpu }));
    sim.run();
    expect(placed).toEqual([0, 2]);
    expect(placed.map((c) => host.coreOf(c))).toEqual([0, 1]);
    expect(host.siblingOf(0)).toBe(1);
  });

  it('topology: core, socket and SMT sibling of a host CPU', () => {
    const host = new HostCpus(new Sim({ seed: 1 }), 'host', { cpus: 16, threadsPerCore: 2, sockets: 2 });
    expect([0, 1, 5, 7, 8, 15].map((c) => [host.coreOf(c), host.socketOf(c), host.siblingOf(c)])).toEqual([
      [0, 0, 1], [0, 0, 0], [2, 0, 4], [3, 0, 6], [4, 1, 9], [7, 1, 14],
    ]);
    const flat = new HostCpus(new Sim({ seed: 1 }), 'flat', { cpus: 4 });
    expect([flat.coreOf(3), flat.socketOf(3), flat.siblingOf(3)]).toEqual([3, 0, -1]);
  });
});

describe('host CPUs: accounting and determinism under overcommit', () => {
  /** Six vCPUs on 2 cores x 2 threads, 1 ms host slices, a flush cost on every migration. */
  function overcommitted(sim: Sim) {
    let flushes = 0;
    const onHostCpuChange = () => {
      flushes++;
      return 5 * US;
    };
    const host = new HostCpus(sim, 'host', { cpus: 4, threadsPerCore: 2, sliceNs: 1 * MS });
    const vcpus = [0, 1, 2, 3, 4, 5].map((i) => new Cpu(sim, `vcpu${i}`, { sliceNs: 1 * MS, host, onHostCpuChange }));
    const lock = new Spinlock(sim, 'zone->lock');
    const slots = new Mutex(sim, 'kvm->slots_lock');
    vcpus.forEach((cpu, i) => {
      for (const priority of [Priority.Normal, Priority.Background]) {
        const rng = sim.rng(`test.overcommit.${i}.${priority}`);
        sim.spawn((function* (): Proc {
          for (let k = 0; k < 30; k++) {
            yield sim.compute(rng.exponential(400 * US));
            yield lock.acquire({ irqsave: true });
            yield sim.compute(rng.exponential(10 * US));
            lock.release({ irqrestore: true });
            yield sim.stallFor(rng.exponential(20 * US));
            yield slots.acquire();
            yield sim.compute(rng.exponential(5 * US));
            slots.release();
            yield sim.sleep(rng.exponential(300 * US));
          }
        })(), { name: `vcpu${i}.${priority}`, cpu, priority });
      }
    });
    sim.run();
    sim.finishRun();
    return { host, vcpus, flushes };
  }

  it('busy + idle = cpus x elapsed for the pool; busy + spin + stall + idle + steal = elapsed for every vCPU', () => {
    const sim = new Sim({ seed: 11 });
    const { host, vcpus, flushes } = overcommitted(sim);
    const pool = host.accounting();
    expect(pool.busyNs + pool.idleNs).toBe(4 * sim.now);
    for (const c of pool.perCpu) expect(c.busyNs + c.idleNs).toBe(sim.now);
    const accounts = vcpus.map((c) => c.accounting());
    for (const a of accounts) expect(total(a)).toBe(sim.now);
    // A vCPU holds a host CPU exactly while it is busy, spinning or stalled.
    expect(pool.busyNs).toBe(accounts.reduce((s, a) => s + a.busyNs + a.spinNs + a.stallNs, 0));
    // Its steal is its time in the run queue.
    expect(host.waitNs()).toBe(accounts.reduce((s, a) => s + a.stealNs, 0));
    // The run is overcommitted enough to exercise the policy.
    expect(host.preemptions).toBeGreaterThan(10);
    expect(host.migrations).toBe(flushes);
    expect(host.migrations).toBeGreaterThan(10);
    expect(host.stats.contended).toBeGreaterThan(100);
    expect(host.inUse).toBe(0);
    expect(host.waiting).toBe(0);
  });

  it.each([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20])('random shapes and workloads, seed %i: the identities hold and every thread finishes', (seed) => {
    const sim = new Sim({ seed });
    const shape = sim.rng('test.shape');
    const nvcpus = 2 + shape.int(5);
    const cpus = 1 + shape.int(nvcpus - 1);
    const smt = cpus % 2 === 0 && shape.int(2) === 0;
    const host = new HostCpus(sim, 'host', { cpus, threadsPerCore: smt ? 2 : 1, sliceNs: (1 + shape.int(3)) * MS });
    const flushNs = shape.int(2) * 3 * US;
    const vcpus = Array.from({ length: nvcpus }, (_, i) => new Cpu(sim, `vcpu${i}`, {
      sliceNs: (1 + shape.int(4)) * MS, backgroundShare: shape.int(2) * 0.2, host, onHostCpuChange: () => flushNs,
    }));
    const lock = new Spinlock(sim, 'zone->lock');
    const slots = new Mutex(sim, 'kvm->slots_lock');
    const pool = new Semaphore(sim, 'kworkers', 2);
    const threads: { p: Process<void>; holds: number }[] = [];
    vcpus.forEach((cpu, i) => {
      for (let t = 0; t < 1 + shape.int(3); t++) {
        const rng = sim.rng(`test.random.${i}.${t}`);
        const thread = { p: null as unknown as Process<void>, holds: 0 };
        thread.p = sim.spawn((function* (): Proc {
          for (let k = 0; k < 30; k++) {
            try {
              const what = rng.int(7);
              if (what === 0) yield sim.compute(rng.exponential(2 * MS));
              else if (what === 1) {
                const irqsave = rng.int(2) === 0;
                yield lock.acquire({ irqsave });
                yield sim.compute(rng.exponential(30 * US));
                lock.release({ irqrestore: irqsave });
              } else if (what === 2) yield sim.stallFor(rng.exponential(50 * US));
              else if (what === 3) {
                yield slots.acquire();
                thread.holds++;
                yield sim.compute(rng.exponential(20 * US));
                slots.release();
                thread.holds--;
              } else if (what === 4) {
                yield pool.acquire();
                thread.holds++;
                yield sim.compute(rng.exponential(100 * US));
                pool.release();
                thread.holds--;
              } else if (what === 5) {
                const done = sim.event('range accepted');
                sim.schedule(rng.exponential(200 * US), () => done.succeed());
                yield sim.spinUntil(done);
              } else yield sim.sleep(rng.exponential(400 * US));
            } catch (e) {
              if (!(e instanceof Interrupt)) throw e;
            }
          }
        })(), { name: `vcpu${i}.${t}`, cpu, priority: t === 1 ? Priority.Background : Priority.Normal });
        threads.push(thread);
      }
    });
    // Signals to sleeping or CPU-waiting threads that hold no lock.
    const signals = sim.rng('test.random.signals');
    for (let k = 0; k < 10; k++) {
      sim.schedule(signals.exponential(5 * MS), () => {
        const { p, holds } = threads[signals.int(threads.length)]!;
        const idle = p.blockedOn === null || p.blockedOn.name === 'sleep';
        if (p.state !== 'done' && idle && holds === 0 && p.preemptCount === 0 && p.irqsOff === 0) p.interrupt('signal');
      }, 'signal');
    }
    sim.run();
    sim.finishRun();
    expect(threads.every(({ p }) => p.state === 'done')).toBe(true);
    const held = host.accounting();
    expect(held.busyNs + held.idleNs).toBe(cpus * sim.now);
    const accounts = vcpus.map((c) => c.accounting());
    for (const a of accounts) expect(total(a)).toBe(sim.now);
    expect(held.busyNs).toBe(accounts.reduce((s, a) => s + a.busyNs + a.spinNs + a.stallNs, 0));
    expect([host.inUse, host.waiting]).toEqual([0, 0]);
  });

  it('same seed: same fingerprint, to the event', () => {
    const r = checkDeterminism(11, (sim) => void overcommitted(sim));
    expect(r.deterministic).toBe(true);
    expect(r.events[0]).toBeGreaterThan(1000);
    const other = new Sim({ seed: 12 });
    overcommitted(other);
    expect(other.fingerprint.hex()).not.toBe(r.fingerprints[0]);
  });
});
