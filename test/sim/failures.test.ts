import { describe, expect, it } from 'vitest';
import { Interrupt, Mutex, Sim, SimError, SimAssertionError, assert, type Proc } from '../../sim/index.ts';

describe('failures are loud and reproducible', () => {
  it('an exception in a process fails the run with the process name, virtual time and seed', () => {
    const sim = new Sim({ seed: 77 });
    sim.spawn((function* (): Proc {
      yield sim.sleep(1234);
      throw new Error('refcount went negative');
    })(), 'tdx_pamt_put');
    let caught: unknown;
    try {
      sim.run();
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(SimError);
    const err = caught as SimError;
    expect(err.message).toContain('refcount went negative');
    expect(err.message).toContain('seed=77');
    expect(err.message).toContain('t=1234ns');
    expect(err.message).toContain('process=tdx_pamt_put#0');
    expect(err.seed).toBe(77);
    expect(err.time).toBe(1234);
  });

  it('a failed assertion carries the object involved', () => {
    const sim = new Sim({ seed: 1 });
    sim.spawn((function* (): Proc {
      yield sim.sleep(5);
      assert(false, 'a unit is accepted at most once', { unit: 17, addr: '0x2200000' });
    })(), 'acceptor');
    expect(() => sim.run()).toThrow(/SimAssertionError: a unit is accepted at most once \(\{"unit":17,"addr":"0x2200000"\}\) \[seed=1 t=5ns/);
    expect(new SimAssertionError('x', { name: 'obj' }).message).toBe('x (obj)');
  });

  it('a deadlock is reported with who holds and who waits for each lock', () => {
    const sim = new Sim({ seed: 9 });
    const a = new Mutex(sim, 'pamt_lock');
    const b = new Mutex(sim, 'mmu_lock');
    sim.spawn((function* (): Proc {
      yield a.acquire();
      yield sim.sleep(10);
      yield b.acquire();
    })(), 'vcpu0');
    sim.spawn((function* (): Proc {
      yield b.acquire();
      yield sim.sleep(10);
      yield a.acquire();
    })(), 'vcpu1');
    expect(() => sim.run()).toThrow(
      /deadlock: 2 process\(es\) blocked[\s\S]*vcpu0#0 waits for mmu_lock held by vcpu1 since t=10ns[\s\S]*vcpu1#1 waits for pamt_lock held by vcpu0 since t=10ns[\s\S]*seed=9/,
    );
  });

  it('a daemon blocked forever is not a deadlock', () => {
    const sim = new Sim({ seed: 1 });
    const never = sim.event('work');
    sim.spawn((function* (): Proc {
      yield never.wait();
    })(), { name: 'server', daemon: true });
    expect(() => sim.run()).not.toThrow();
  });
});

describe('process composition', () => {
  it('join returns the value of the joined process', () => {
    const sim = new Sim({ seed: 1 });
    let got: unknown;
    const child = sim.spawn((function* (): Proc<number> {
      yield sim.sleep(50);
      return 42;
    })(), 'child');
    sim.spawn((function* (): Proc {
      got = yield child.join();
    })(), 'parent');
    sim.run();
    expect(got).toBe(42);
    expect(sim.now).toBe(50);
  });

  it('interrupt is delivered at the yield point with its reason, cancelling the sleep', () => {
    const sim = new Sim({ seed: 1 });
    const seen: [string, number][] = [];
    const sleeper = sim.spawn((function* (): Proc {
      try {
        yield sim.sleep(1000);
        seen.push(['woke normally', sim.now]);
      } catch (e) {
        seen.push([`interrupted: ${(e as Interrupt).reason}`, sim.now]);
      }
      yield sim.sleep(5);
      seen.push(['after', sim.now]);
    })(), 'sleeper');
    sim.schedule(100, () => sleeper.interrupt('hot-add'));
    sim.run();
    expect(seen).toEqual([['interrupted: hot-add', 100], ['after', 105]]);
  });

  it('an interrupted lock waiter leaves the queue', () => {
    const sim = new Sim({ seed: 1 });
    const m = new Mutex(sim, 'm');
    const order: string[] = [];
    sim.spawn((function* (): Proc {
      yield m.acquire();
      yield sim.sleep(100);
      m.release();
    })(), 'holder');
    const impatient = sim.spawn((function* (): Proc {
      try {
        yield m.acquire();
        order.push('impatient got it');
      } catch {
        order.push('impatient gave up');
      }
    })(), 'impatient');
    sim.spawn((function* (): Proc {
      yield sim.sleep(1);
      yield m.acquire();
      order.push('patient got it');
      m.release();
    })(), 'patient');
    sim.schedule(50, () => impatient.interrupt('timeout'));
    sim.run();
    expect(order).toEqual(['impatient gave up', 'patient got it']);
  });

  it('anyOf and allOf', () => {
    const sim = new Sim({ seed: 1 });
    const e1 = sim.event<string>('e1');
    const e2 = sim.event<string>('e2');
    const got: unknown[] = [];
    sim.spawn((function* (): Proc {
      got.push(yield sim.anyOf([e1, e2]), sim.now);
      got.push(yield sim.allOf([e1, e2]), sim.now);
    })(), 'waiter');
    sim.schedule(10, () => e2.succeed('second'));
    sim.schedule(30, () => e1.succeed('first'));
    sim.run();
    expect(got).toEqual([{ index: 1, value: 'second' }, 10, ['first', 'second'], 30]);
  });

  it('run until a time and until a condition', () => {
    const sim = new Sim({ seed: 1 });
    let count = 0;
    sim.spawn((function* (): Proc {
      for (;;) {
        yield sim.sleep(10);
        count++;
      }
    })(), { name: 'ticker', daemon: true });
    sim.run({ until: 35 });
    expect([count, sim.now]).toEqual([3, 35]);
    expect(sim.runUntil(() => count === 7)).toBe(true);
    expect(sim.now).toBe(70);
    expect(sim.step()).toBe(true);
    expect(sim.now).toBe(80);
  });
});

describe('deadlock reports stay readable', () => {
  it('lists the first 20 blocked processes and counts the rest', () => {
    const sim = new Sim({ seed: 1 });
    const m = new Mutex(sim, 'm');
    sim.spawn((function* (): Proc {
      yield m.acquire();
      yield sim.event('never').wait();
    })(), 'holder');
    for (let i = 0; i < 30; i++) {
      sim.spawn((function* (): Proc {
        yield m.acquire();
      })(), `waiter${i}`);
    }
    let message = '';
    try {
      sim.run();
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/deadlock: 31 process\(es\) blocked/);
    expect(message).toMatch(/\.\.\. and 11 more/);
    expect(message.split('\n').filter((l) => l.includes(' waits for ')).length).toBe(20);
  });
});
