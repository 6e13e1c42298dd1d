import { describe, expect, it } from 'vitest';
import { Cpu, Mutex, RwLock, Semaphore, Sim, Spinlock, TryLock, US, S, type Proc, type RwPolicy } from '../../sim/index.ts';
import { scenarioLog as logger } from './scenario_log.ts';


describe('mutex', () => {
  it('hands over in FIFO order and records wait and hold times', () => {
    const sim = new Sim({ seed: 1 });
    const m = new Mutex(sim, 'm');
    const { log, note } = logger(sim);
    for (const [name, arrive] of [['a', 0], ['b', 1], ['c', 2]] as const) {
      sim.spawn((function* (): Proc {
        yield sim.sleep(arrive);
        yield m.acquire();
        note(`${name} got`);
        yield sim.sleep(10);
        m.release();
      })(), name);
    }
    sim.run();
    expect(log).toEqual([['a got', 0], ['b got', 10], ['c got', 20]]);
    const s = m.stats.snapshot();
    expect(s.acquisitions).toBe(3);
    expect(s.contended).toBe(2);
    expect(s.wait_ns.max).toBe(18);
    expect(s.hold_ns.mean).toBe(10);
  });
});

describe('rwlock fairness', () => {
  // A reader holds; a writer arrives at 1; a second reader arrives at 2.
  function scenario(policy: RwPolicy) {
    const sim = new Sim({ seed: 1 });
    const rw = new RwLock(sim, 'rw', policy);
    const { log, note } = logger(sim);
    const actor = (name: string, mode: 'shared' | 'exclusive', arrive: number, hold: number) =>
      sim.spawn((function* (): Proc {
        yield sim.sleep(arrive);
        yield rw.acquire(mode);
        note(`${name} in`);
        yield sim.sleep(hold);
        rw.release(mode);
      })(), name);
    actor('r1', 'shared', 0, 10);
    actor('w', 'exclusive', 1, 10);
    actor('r2', 'shared', 2, 10);
    sim.run();
    return log;
  }

  it('writer-preferring: a waiting writer blocks later readers', () => {
    expect(scenario('writer-preferring')).toEqual([['r1 in', 0], ['w in', 10], ['r2 in', 20]]);
  });

  it('reader-preferring: a later reader joins while the writer waits', () => {
    expect(scenario('reader-preferring')).toEqual([['r1 in', 0], ['r2 in', 2], ['w in', 12]]);
  });

  it('fifo: strict arrival order', () => {
    expect(scenario('fifo')).toEqual([['r1 in', 0], ['w in', 10], ['r2 in', 20]]);
  });

  it('readers share: consecutive readers enter together', () => {
    const sim = new Sim({ seed: 1 });
    const rw = new RwLock(sim, 'rw');
    const { log, note } = logger(sim);
    for (const name of ['a', 'b', 'c']) {
      sim.spawn((function* (): Proc {
        yield rw.acquire('shared');
        note(name);
        yield sim.sleep(5);
        rw.release('shared');
      })(), name);
    }
    sim.run();
    expect(log).toEqual([['a', 0], ['b', 0], ['c', 0]]);
  });
});

describe('TDX module try-lock', () => {
  it('answers busy instead of waiting, and the caller retries', () => {
    const sim = new Sim({ seed: 1 });
    const lock = new TryLock(sim, 'sept');
    const { log, note } = logger(sim);
    sim.spawn((function* (): Proc {
      expect(lock.tryAcquire('exclusive')).toBe('acquired');
      yield sim.sleep(100);
      lock.release('exclusive');
    })(), 'holder');
    sim.spawn((function* (): Proc {
      yield sim.sleep(10);
      for (;;) {
        const answer = lock.tryAcquire('shared');
        note(answer);
        if (answer === 'acquired') break;
        yield sim.sleep(40);
      }
      lock.release('shared');
    })(), 'retrier');
    sim.run();
    expect(log).toEqual([['busy', 10], ['busy', 50], ['busy', 90], ['acquired', 130]]);
    expect(lock.stats.busy).toBe(3);
    expect(lock.stats.acquisitions).toBe(2);
  });

  it('host priority: after a host-side acquire fails, guest-side acquires fail until the host gets the lock', () => {
    const sim = new Sim({ seed: 1 });
    const lock = new TryLock(sim, 'sept');
    const answers: string[] = [];
    sim.spawn((function* (): Proc {
      answers.push(lock.tryAcquire('shared', 'guest'));          // guest holds shared
      answers.push(lock.tryAcquire('exclusive', 'host'));        // host refused: sets host priority
      answers.push(lock.tryAcquire('shared', 'guest'));          // shared would be free, but host has priority
      lock.release('shared');
      answers.push(lock.tryAcquire('shared', 'guest'));          // still refused: host has not acquired yet
      answers.push(lock.tryAcquire('exclusive', 'host'));        // host gets it, clears priority
      lock.release('exclusive');
      answers.push(lock.tryAcquire('shared', 'guest'));
      lock.release('shared');
      yield sim.sleep(0);
    })(), 'actors');
    sim.run();
    expect(answers).toEqual(['acquired', 'busy', 'busy_host_priority', 'busy_host_priority', 'acquired', 'acquired']);
    expect(lock.hostPriority).toBe(false);
  });
});

describe('spinlock', () => {
  it('a waiter burns its CPU spinning until the holder releases', () => {
    const sim = new Sim({ seed: 1 });
    const cpus = [new Cpu(sim, 'cpu0'), new Cpu(sim, 'cpu1')];
    const lock = new Spinlock(sim, 'lock');
    const { log, note } = logger(sim);
    sim.spawn((function* (): Proc {
      yield lock.acquire();
      yield sim.compute(10 * US);
      lock.release();
      note('holder released');
    })(), { name: 'holder', cpu: cpus[0] });
    sim.spawn((function* (): Proc {
      yield sim.sleep(1 * US);
      yield lock.acquire();
      note('waiter got');
      lock.release();
    })(), { name: 'waiter', cpu: cpus[1] });
    sim.run();
    sim.finishRun();
    expect(log).toEqual([['holder released', 10 * US], ['waiter got', 10 * US]]);
    expect(cpus[1]!.accounting().spinNs).toBe(9 * US);
    expect(cpus[0]!.accounting().busyNs).toBe(10 * US);
    expect(lock.stats.snapshot().wait_ns.max).toBe(9 * US);
  });

  it('a holder with interrupts off cannot be preempted, and a stretch over 20 s is a soft lockup', () => {
    const sim = new Sim({ seed: 1 });
    const cpu = new Cpu(sim, 'vcpu0');
    const lock = new Spinlock(sim, 'lock');
    const { log, note } = logger(sim);
    sim.spawn((function* (): Proc {
      yield lock.acquire({ irqsave: true });
      yield sim.compute(25 * S);
      lock.release({ irqrestore: true });
      note('long holder done');
    })(), { name: 'long', cpu });
    sim.spawn((function* (): Proc {
      yield sim.sleep(1 * S);
      yield sim.compute(1 * S);
      note('other thread done');
    })(), { name: 'other', cpu });
    sim.run();
    expect(log).toEqual([['long holder done', 25 * S], ['other thread done', 26 * S]]);
    expect(sim.softLockups).toEqual([{ cpu: 'vcpu0', thread: 'long', at: 20 * S, stuckNs: 25 * S }]);
  });

  it('touch_softlockup_watchdog restarts the stretch', () => {
    const sim = new Sim({ seed: 1 });
    const cpu = new Cpu(sim, 'vcpu0');
    sim.spawn((function* (): Proc {
      sim.localIrqDisable();
      yield sim.compute(15 * S);
      sim.touchSoftlockupWatchdog();
      yield sim.compute(15 * S);
      sim.localIrqEnable();
    })(), { name: 'toucher', cpu });
    sim.run();
    expect(sim.softLockups).toEqual([]);
  });
});

describe('waiters that keep their CPU', () => {
  it("rwlock with waiters: 'spin' (an rwlock_t like mmu_lock): a waiter spins on its CPU", () => {
    const sim = new Sim({ seed: 1 });
    const cpus = [new Cpu(sim, 'cpu0'), new Cpu(sim, 'cpu1')];
    const mmu = new RwLock(sim, 'mmu_lock', 'fifo', 'spin');
    const { log, note } = logger(sim);
    sim.spawn((function* (): Proc {
      yield mmu.acquire('exclusive');
      yield sim.compute(10 * US);
      mmu.release('exclusive');
    })(), { name: 'zap', cpu: cpus[0] });
    sim.spawn((function* (): Proc {
      yield sim.sleep(2 * US);
      yield mmu.acquire('shared');
      note('fault got mmu_lock');
      mmu.release('shared');
    })(), { name: 'fault', cpu: cpus[1] });
    sim.spawn((function* (): Proc {
      yield sim.sleep(3 * US);
      yield sim.compute(1 * US);
      note('other thread ran');
    })(), { name: 'other', cpu: cpus[1] });
    sim.run();
    expect(log).toEqual([['fault got mmu_lock', 10 * US], ['other thread ran', 11 * US]]);
    expect(cpus[1]!.accounting().spinNs).toBe(8 * US);
  });

  it("mutex with waiters: 'stall' keeps a vCPU inside its VM exit while it waits", () => {
    const sim = new Sim({ seed: 1 });
    const vcpu = new Cpu(sim, 'vcpu1');
    const slots = new Mutex(sim, 'slots_lock', 'stall');
    const { log, note } = logger(sim);
    sim.spawn((function* (): Proc {
      yield slots.acquire();
      yield sim.sleep(20 * US);
      slots.release();
    })(), 'vmm');
    sim.spawn((function* (): Proc {
      yield sim.sleep(1 * US);
      yield slots.acquire();
      note('exit handled');
      slots.release();
    })(), { name: 'vcpu1-exit', cpu: vcpu });
    sim.spawn((function* (): Proc {
      yield sim.sleep(2 * US);
      yield sim.compute(1 * US);
      note('guest thread ran');
    })(), { name: 'guest', cpu: vcpu });
    sim.run();
    expect(log).toEqual([['exit handled', 20 * US], ['guest thread ran', 21 * US]]);
    expect(vcpu.accounting().stallNs).toBe(19 * US);
  });

  it("semaphore with waiters: 'stall': a vCPU waiting for a host CPU keeps its vCPU", () => {
    const sim = new Sim({ seed: 1 });
    const vcpus = [new Cpu(sim, 'vcpu0'), new Cpu(sim, 'vcpu1')];
    const hostCpus = new Semaphore(sim, 'host_cpus', 1, 'stall');
    const { log, note } = logger(sim);
    for (const i of [0, 1]) {
      sim.spawn((function* (): Proc {
        yield hostCpus.acquire();
        yield sim.stallFor(10 * US);
        hostCpus.release();
        note(`exit ${i} done`);
      })(), { name: `exit${i}`, cpu: vcpus[i] });
    }
    sim.run();
    expect(log).toEqual([['exit 0 done', 10 * US], ['exit 1 done', 20 * US]]);
    expect(vcpus[1]!.accounting().stallNs).toBe(20 * US);
    expect(hostCpus.busyNs()).toBe(20 * US);
  });

  it('stallFor keeps the CPU for a fixed time as one event', () => {
    const sim = new Sim({ seed: 1 });
    const vcpu = new Cpu(sim, 'vcpu0');
    const { log, note } = logger(sim);
    sim.spawn((function* (): Proc {
      yield sim.stallFor(5 * US);
      note('re-entered');
    })(), { name: 'exit', cpu: vcpu });
    sim.spawn((function* (): Proc {
      yield sim.compute(1 * US);
      note('other ran');
    })(), { name: 'other', cpu: vcpu });
    sim.run();
    expect(log).toEqual([['re-entered', 5 * US], ['other ran', 6 * US]]);
    expect(vcpu.accounting().stallNs).toBe(5 * US);
  });

  it('a try-lock without host priority never refuses the guest side for it', () => {
    const sim = new Sim({ seed: 1 });
    const tree = new TryLock(sim, 'secure_ept_lock', false);
    const answers: string[] = [];
    sim.spawn((function* (): Proc {
      answers.push(tree.tryAcquire('shared', 'guest'));
      answers.push(tree.tryAcquire('exclusive', 'host'));
      answers.push(tree.tryAcquire('shared', 'guest'));
      tree.release('shared');
      tree.release('shared');
      yield sim.sleep(0);
    })(), 'actors');
    sim.run();
    expect(answers).toEqual(['acquired', 'busy', 'acquired']);
  });
});
