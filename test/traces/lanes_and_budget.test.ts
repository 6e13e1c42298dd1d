import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Cpu, HostCpus, Priority, Sim, Spinlock, US, type Proc } from '../../sim/index.ts';
import { defaultTraceOptions, startTracing, type TraceOptions } from '../../traces/index.ts';
import { CVMSIM_VERSION } from '../../traces/version.ts';
import { flattenOtlp, tempOtlpFile, type FlatSpan } from './contention_scenario.ts';

/** Runs `build` on a fresh Sim, traced to an .otlp.json (and a .jaeger.json beside it). */
async function traced(build: (sim: Sim) => void, options: Partial<TraceOptions> = {}) {
  const file = tempOtlpFile();
  const jaeger = file.replace('.otlp.json', '.jaeger.json');
  const sim = new Sim({ seed: 11 });
  const session = startTracing(sim, { experiment: 'scenario', params: {}, seed: 11 }, { ...defaultTraceOptions, files: [file, jaeger], ...options });
  build(sim);
  sim.run();
  const summary = await session.finish();
  return { spans: flattenOtlp(readFileSync(file)), summary, jaeger: JSON.parse(readFileSync(jaeger, 'utf8')), fingerprint: sim.fingerprint.hex() };
}

function named(spans: FlatSpan[], name: string): FlatSpan[] {
  return spans.filter((s) => s.name === name);
}

function parentOf(spans: FlatSpan[], s: FlatSpan): FlatSpan | undefined {
  return spans.find((p) => p.spanId === s.parentSpanId);
}

describe('lanes: one per CPU, what ran on it under it', () => {
  it('a vCPU lane holds its threads; the idle-class thread is the lane\'s idle time, not a span of its own', async () => {
    const { spans } = await traced((sim) => {
      const cpu = new Cpu(sim, 'vm1/vcpu0');
      sim.spawn((function* (): Proc {
        const id = sim.opBegin('start_kernel', {});
        yield sim.compute(5 * US);
        sim.opEnd(id);
      })(), { name: 'vm1/swapper/0', cpu, service: 'guest/vm1' });
      sim.spawn((function* (): Proc {
        for (let i = 0; i < 3; i++) {
          yield sim.sleep(100 * US);
          yield sim.compute(1 * US);
        }
      })(), { name: 'vm1/swapper/0', cpu, service: 'guest/vm1', priority: Priority.Idle, daemon: true });
    });
    const lane = named(spans, 'vm1/vcpu0');
    expect(lane).toHaveLength(1);
    expect(lane[0]!.attributes).toMatchObject({ 'cvmsim.lane': 'cpu', 'cvmsim.idle_thread': 'vm1/swapper/0', 'cvmsim.idle_thread.cpu_time_ns': 3000 });
    // One row named swapper/0: the boot thread; the idle loop's 300 us are not a bar.
    const threads = named(spans, 'vm1/swapper/0');
    expect(threads).toHaveLength(1);
    expect(threads[0]!.endNs).toBe(5000);
    expect(parentOf(spans, threads[0]!)).toBe(lane[0]);
    expect(parentOf(spans, named(spans, 'start_kernel')[0]!)).toBe(threads[0]);
  });

  it('a scheduler that reports which host CPU ran a vCPU (cpuRun) gives that host CPU a lane of runs', async () => {
    const { spans } = await traced((sim) => {
      sim.spawn((function* (): Proc {
        yield sim.sleep(10 * US);
        sim.observer?.cpuRun?.('host/cpu3', 'vm1/vcpu0', 0, 4000);
        sim.observer?.cpuRun?.('host/cpu3', 'vm2/vcpu0', 4000, 10_000);
      })(), { name: 'host-scheduler', service: 'kvm' });
    });
    const lane = named(spans, 'host/cpu3');
    expect(lane).toHaveLength(1);
    expect(lane[0]!.service).toBe('kvm');
    const runs = spans.filter((s) => s.parentSpanId === lane[0]!.spanId).map((s) => `${s.name} [${s.startNs}, ${s.endNs}]`);
    expect(runs).toEqual(['vm1/vcpu0 [0, 4000]', 'vm2/vcpu0 [4000, 10000]']);
  });

  it('HostCpus reports its grants: two vCPUs sharing one host CPU take turns on its lane', async () => {
    const { spans } = await traced((sim) => {
      const host = new HostCpus(sim, 'host_cpus', { cpus: 1, sliceNs: 3000 });
      for (const v of ['vm1/vcpu0', 'vm2/vcpu0']) {
        const cpu = new Cpu(sim, v, { host });
        sim.spawn((function* (): Proc {
          yield sim.compute(5000);
        })(), { name: `${v}/thread`, cpu });
      }
    });
    const lane = named(spans, 'host_cpus/cpu0');
    expect(lane).toHaveLength(1);
    const runs = spans.filter((s) => s.parentSpanId === lane[0]!.spanId).map((s) => `${s.name} [${s.startNs}, ${s.endNs}]`);
    // Slices of 3 us, someone always waiting: round robin until each has had its 5 us.
    expect(runs).toEqual(['vm1/vcpu0 [0, 3000]', 'vm2/vcpu0 [3000, 6000]', 'vm1/vcpu0 [6000, 8000]', 'vm2/vcpu0 [8000, 10000]']);
  });
});

describe('contention on the op that met it', () => {
  /** Two threads on two CPUs take one spinlock; the holder keeps it `holdNs`. */
  function spin(sim: Sim, holdNs: number): void {
    const lock = new Spinlock(sim, 'zone->lock');
    for (const i of [0, 1]) {
      sim.spawn((function* (): Proc {
        const id = sim.opBegin('rmqueue', {});
        yield lock.acquire();
        yield sim.compute(holdNs);
        lock.release();
        sim.opEnd(id);
      })(), { name: `t${i}`, cpu: new Cpu(sim, `cpu${i}`), service: 'guest' });
    }
  }

  it('a wait under 1 us is counted on its op (count and ns), not drawn as a 0 us span', async () => {
    const { spans } = await traced((sim) => spin(sim, 400), { level: 'lock' });
    expect(named(spans, 'wait zone->lock')).toHaveLength(0);
    const waited = spans.find((s) => s.name === 'rmqueue' && s.attributes['lock.short_waits'] !== undefined)!;
    expect(waited.attributes).toMatchObject({ 'lock.short_waits': 1, 'lock.short_wait_ns': 400 });
  });

  it('a wait of 1 us or more is a span at level lock, naming the lock, mode, holder and waiter', async () => {
    const { spans } = await traced((sim) => spin(sim, 3000), { level: 'lock' });
    const wait = named(spans, 'wait zone->lock');
    expect(wait).toHaveLength(1);
    expect(wait[0]!.attributes).toMatchObject({ 'lock.holders': 't0', 'lock.waiter': 't1', 'lock.mode': 'exclusive', 'lock.wait_ns': 3000 });
  });
});

describe('trace hygiene', () => {
  it('an exit that starts the instant its cause in the same thread ended nests in it (no FOLLOWS_FROM); a link to an ancestor is dropped', async () => {
    const { spans } = await traced((sim) => {
      sim.spawn((function* (): Proc {
        const accept = sim.opBegin('TDG.MEM.PAGE.ACCEPT', { gpa: '0x0', size: 4096 });
        yield sim.compute(1 * US);
        sim.opEnd(accept, { status: 'EPT_VIOLATION' });
        const exit = sim.opBegin('tdx_handle_ept_violation', {}, accept, 'kvm');
        const aug = sim.opBegin('TDH.MEM.PAGE.AUG', { size: 4096 }, exit, 'tdx-module');
        yield sim.stallFor(2 * US);
        sim.opEnd(aug, { status: '0x8000020000000000' });
        sim.opEnd(exit);
      })(), { name: 'vm1/vcpu0', cpu: new Cpu(sim, 'cpu0'), service: 'guest/vm1' });
    });
    const accept = named(spans, 'TDG.MEM.PAGE.ACCEPT')[0]!;
    const exit = named(spans, 'tdx_handle_ept_violation')[0]!;
    const aug = named(spans, 'TDH.MEM.PAGE.AUG')[0]!;
    expect(parentOf(spans, exit)).toBe(accept);
    expect([accept.startNs, accept.endNs]).toEqual([0, 3000]);
    expect(exit.links).toEqual([]);
    expect(aug.links).toEqual([]);
    // The status travels with its name.
    expect(aug.attributes).toMatchObject({ status: '0x8000020000000000', 'status.name': 'TDX_OPERAND_BUSY' });
  });

  it('every service\'s resource names cvmsim\'s version and the experiment; every Jaeger span has span.kind', async () => {
    const { jaeger } = await traced((sim) => {
      sim.spawn((function* (): Proc {
        const id = sim.opBegin('op', {});
        yield sim.sleep(1);
        sim.opEnd(id);
      })(), { name: 'w', service: 'guest/vm1' });
    });
    const trace = jaeger.data[0];
    for (const p of Object.values(trace.processes) as { tags: { key: string; value: unknown }[] }[]) {
      expect(p.tags).toEqual(expect.arrayContaining([
        { key: 'service.version', type: 'string', value: CVMSIM_VERSION },
        { key: 'cvmsim.experiment', type: 'string', value: 'scenario' },
      ]));
    }
    for (const s of trace.spans) expect(s.tags).toContainEqual({ key: 'span.kind', type: 'string', value: 'internal' });
  });
});

describe('the span budget spent over the whole run', () => {
  /** Four threads, each 2000 short ops over 0.1 s, one op of 5 ms in the middle of thread 2. */
  function busyRun(sim: Sim): void {
    for (let t = 0; t < 4; t++) {
      const rng = sim.rng(`test.thread.${t}`);
      sim.spawn((function* (): Proc {
        for (let i = 0; i < 2000; i++) {
          const long = t === 2 && i === 1000;
          const id = sim.opBegin(long ? 'long_op' : 'short_op', { i });
          yield sim.sleep(long ? 5_000_000 : 1000 + rng.int(1000));
          sim.opEnd(id);
          yield sim.sleep(48_000);
        }
      })(), { name: `t${t}`, cpu: new Cpu(sim, `cpu${t}`), service: 'guest' });
    }
  }

  it('keeps ops in every tenth of the run and the longest op; what it cuts is tallied on each thread with its time', async () => {
    const full = await traced(busyRun);
    const cut = await traced(busyRun, { maxSpans: 400 });
    expect(cut.fingerprint).toBe(full.fingerprint);
    expect(cut.spans.length).toBeLessThanOrEqual(400);
    expect(cut.summary.droppedSpans).toBe(8000 + 9 - cut.spans.length);
    const end = Math.max(...cut.spans.map((s) => s.endNs));
    const tenths = new Set(cut.spans.filter((s) => s.name.endsWith('_op')).map((s) => Math.min(9, Math.floor((s.startNs * 10) / end))));
    expect([...tenths].sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(named(cut.spans, 'long_op')).toHaveLength(1);
    const root = cut.spans.find((s) => s.parentSpanId === undefined)!;
    expect(root.attributes['cvmsim.trace.coverage']).toBeGreaterThanOrEqual(0.9);
    for (const t of ['t0', 't1', 't2', 't3']) {
      const thread = cut.spans.find((s) => s.attributes['thread.name'] === t)!;
      const kept = cut.spans.filter((s) => s.parentSpanId === thread.spanId).length;
      expect(thread.attributes['cvmsim.cut_spans']).toBe(2000 - kept);
      expect(thread.attributes['cvmsim.cut.short_op']).toMatch(/^\d+ spans, \d+ ns$/);
      expect(thread.attributes['cvmsim.cut_ns']).toBeGreaterThan(0);
    }
  });

  it('the same run keeps the same spans', async () => {
    const a = await traced(busyRun, { maxSpans: 300 });
    const b = await traced(busyRun, { maxSpans: 300 });
    expect(a.spans).toEqual(b.spans);
  });
});
