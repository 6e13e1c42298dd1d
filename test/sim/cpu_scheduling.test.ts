import { describe, expect, it } from 'vitest';
import { Cpu, Priority, Sim, MS, type Proc } from '../../sim/index.ts';
import { scenarioLog } from './scenario_log.ts';


describe('CPU scheduling', () => {
  it('a background thread gets only idle CPU time: it is preempted when a normal thread wakes', () => {
    const sim = new Sim({ seed: 1 });
    const cpu = new Cpu(sim, 'vcpu0');
    const { log: entries, note } = scenarioLog(sim);
    sim.spawn((function* (): Proc {
      yield sim.compute(100 * MS);
      note('background done');
    })(), { name: 'acceptor', cpu, priority: Priority.Background });
    sim.spawn((function* (): Proc {
      yield sim.sleep(10 * MS);
      yield sim.compute(30 * MS);
      note('workload done');
    })(), { name: 'workload', cpu });
    sim.run();
    // Background ran 0-10 ms, was preempted for 10-40 ms, then finished its remaining 90 ms.
    expect(entries).toEqual([['workload done', 40 * MS], ['background done', 130 * MS]]);
    const acct = cpu.accounting();
    expect(acct.busyNs).toBe(130 * MS);
    expect(acct.idleNs).toBe(0);
  });

  it('a background share guarantees the configured fraction while normal threads compete', () => {
    const sim = new Sim({ seed: 1 });
    const cpu = new Cpu(sim, 'vcpu0', { sliceNs: 4 * MS, backgroundShare: 0.2 });
    const bg = sim.spawn((function* (): Proc {
      yield sim.compute(1000 * MS);
    })(), { name: 'bg', cpu, priority: Priority.Background });
    const fg = sim.spawn((function* (): Proc {
      yield sim.compute(1000 * MS);
    })(), { name: 'fg', cpu });
    sim.run({ until: 500 * MS });
    const share = bg.cpuTimeNs / (bg.cpuTimeNs + fg.cpuTimeNs);
    expect(share).toBeGreaterThan(0.18);
    expect(share).toBeLessThan(0.22);
  });

  it('normal threads share a CPU in round-robin slices', () => {
    const sim = new Sim({ seed: 1 });
    const cpu = new Cpu(sim, 'vcpu0', { sliceNs: 4 * MS });
    const { log: entries, note } = scenarioLog(sim);
    for (const name of ['a', 'b']) {
      sim.spawn((function* (): Proc {
        yield sim.compute(10 * MS);
        note(`${name} done`);
      })(), { name, cpu });
    }
    sim.run();
    // a: 0-4, b: 4-8, a: 8-12, b: 12-16, a: 16-18 done, b: 18-20 done.
    expect(entries).toEqual([['a done', 18 * MS], ['b done', 20 * MS]]);
  });

  it('the idle class runs only when nothing else wants the CPU', () => {
    const sim = new Sim({ seed: 1 });
    const cpu = new Cpu(sim, 'vcpu0');
    let idleRuns = 0;
    sim.spawn((function* (): Proc {
      for (;;) {
        yield sim.compute(1 * MS);
        idleRuns++;
      }
    })(), { name: 'idle', cpu, priority: Priority.Idle, daemon: true });
    sim.spawn((function* (): Proc {
      yield sim.compute(5 * MS);
      yield sim.sleep(5 * MS);
      yield sim.compute(5 * MS);
    })(), { name: 'work', cpu, priority: Priority.Background });
    sim.run({ until: 20 * MS });
    // The idle loop runs 5-10 ms and 15-20 ms: 10 complete 1 ms iterations.
    expect(idleRuns).toBe(10);
  });

  it('a stall keeps the CPU: other threads wait while a vCPU is in a VM exit', () => {
    const sim = new Sim({ seed: 1 });
    const cpu = new Cpu(sim, 'vcpu0');
    const exit = sim.event('exit handled');
    const { log: entries, note } = scenarioLog(sim);
    sim.spawn((function* (): Proc {
      yield sim.stall(exit);
      note('re-entered');
    })(), { name: 'vcpu-thread', cpu });
    sim.spawn((function* (): Proc {
      yield sim.sleep(1 * MS);
      yield sim.compute(1 * MS);
      note('other ran');
    })(), { name: 'other', cpu });
    sim.schedule(10 * MS, () => exit.succeed(), 'host');
    sim.run();
    expect(entries).toEqual([['re-entered', 10 * MS], ['other ran', 11 * MS]]);
    expect(cpu.accounting().stallNs).toBe(10 * MS);
  });
});

describe('voluntary preemption and spinning on an event', () => {
  it('cond_resched gives the CPU to a waiting normal thread and resumes afterwards', () => {
    const sim = new Sim({ seed: 1 });
    const cpu = new Cpu(sim, 'vcpu0');
    const { log: entries, note } = scenarioLog(sim);
    sim.spawn((function* (): Proc {
      sim.localIrqDisable(); // a non-preemptible stretch: the normal thread cannot preempt it
      yield sim.compute(10 * MS);
      sim.localIrqEnable();
      yield sim.condResched();
      note('acceptor resumed');
      yield sim.condResched(); // nobody waits now: continues at once
      note('acceptor continued');
    })(), { name: 'acceptor', cpu, priority: Priority.Background });
    sim.spawn((function* (): Proc {
      yield sim.sleep(1 * MS);
      yield sim.compute(3 * MS);
      note('workload done');
    })(), { name: 'workload', cpu });
    sim.run();
    expect(entries).toEqual([['workload done', 13 * MS], ['acceptor resumed', 13 * MS], ['acceptor continued', 13 * MS]]);
  });

  it('spinUntil burns the CPU as spin time until the event', () => {
    const sim = new Sim({ seed: 1 });
    const cpu = new Cpu(sim, 'vcpu0');
    const done = sim.event('range accepted');
    sim.spawn((function* (): Proc {
      yield sim.spinUntil(done);
    })(), { name: 'waiter', cpu });
    sim.schedule(7 * MS, () => done.succeed());
    sim.run();
    expect(cpu.accounting().spinNs).toBe(7 * MS);
  });
});
