import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { Cpu, Mutex, S, Sim, SimError, US, type Proc } from '../../sim/index.ts';
import { defaultTraceOptions, startTracing } from '../../traces/index.ts';
import { flattenOtlp, tempOtlpFile, tracedContention, type FlatSpan } from './contention_scenario.ts';

/** name@service [start, end] under parent, for a compact comparison of the whole tree. */
function outline(spans: FlatSpan[]): string[] {
  const byId = new Map(spans.map((s) => [s.spanId, s]));
  return spans
    .map((s) => {
      const parent = s.parentSpanId === undefined ? '-' : byId.get(s.parentSpanId)?.name ?? '?';
      return `${s.name}@${s.service} [${s.startNs}, ${s.endNs}] under ${parent}`;
    })
    .sort();
}

function only(spans: FlatSpan[], predicate: (s: FlatSpan) => boolean): FlatSpan {
  const found = spans.filter(predicate);
  expect(found).toHaveLength(1);
  return found[0]!;
}

describe('span tree of two vCPUs contending on a spinlock, then a TDX try-lock', () => {
  it('lock level: a lane per CPU under the root, its threads under it, ops under their thread, the wait under the op, TDX-module ops under the caller', async () => {
    const { otlp } = await tracedContention(1, { level: 'lock' });
    expect(outline(flattenOtlp(otlp))).toEqual([
      'TDG.MEM.PAGE.ACCEPT@tdx-module [3000, 8000] under accept_memory',
      'TDG.MEM.PAGE.ACCEPT@tdx-module [6000, 6000] under accept_memory',
      'TDG.MEM.PAGE.ACCEPT@tdx-module [9000, 12000] under accept_memory',
      'accept_memory@guest [0, 8000] under vcpu0',
      'accept_memory@guest [1000, 12000] under vcpu1',
      'contention@cvmsim [0, 12000] under -',
      'vcpu0@guest [0, 8000] under contention', // the lane of CPU vcpu0
      'vcpu0@guest [0, 8000] under vcpu0', // the thread vcpu0 on it
      'vcpu1@guest [0, 12000] under contention',
      'vcpu1@guest [0, 12000] under vcpu1',
      'wait zone->lock@guest [1000, 3000] under accept_memory',
    ]);
    const lane = only(flattenOtlp(otlp), (s) => s.name === 'vcpu1' && s.attributes['cvmsim.lane'] === 'cpu');
    expect(lane.attributes).toMatchObject({ 'cvmsim.cpu': 'vcpu1', 'cvmsim.threads': 'vcpu1' });
    expect(lane.attributes['cvmsim.cpu.busy_ns']).toBeGreaterThan(0);
  });

  it('the lock wait names the lock, mode, holder and wait time', async () => {
    const spans = flattenOtlp((await tracedContention(1, { level: 'lock' })).otlp);
    const wait = only(spans, (s) => s.name === 'wait zone->lock');
    expect(wait.attributes).toEqual({
      'lock.name': 'zone->lock', 'lock.kind': 'spinlock', 'lock.mode': 'exclusive', 'lock.holders': 'vcpu0', 'lock.waiter': 'vcpu1',
      'lock.wait_ns': 2000, 'lock.outcome': 'acquired',
    });
  });

  it('the BUSY answer is an event on the refused SEAMCALL-side op, the retry an event on its caller', async () => {
    const spans = flattenOtlp((await tracedContention(1, { level: 'lock' })).otlp);
    const refused = only(spans, (s) => s.name === 'TDG.MEM.PAGE.ACCEPT' && s.startNs === 6000);
    expect(refused.attributes['tdx.status']).toBe('TDX_OPERAND_BUSY');
    expect(refused.attributes['tdx.status.code']).toBe('0x8000020000000000');
    expect(refused.events).toEqual([{
      name: 'lock_busy', atNs: 6000,
      attributes: { 'lock.name': 'sept_lock', 'lock.kind': 'trylock', 'lock.mode': 'exclusive', 'lock.holders': 'vcpu0', 'lock.waiter': 'vcpu1', 'lock.answer': 'busy' },
    }]);
    const caller = only(spans, (s) => s.name === 'accept_memory' && s.startNs === 1000);
    expect(caller.events).toEqual([{ name: 'retry', atNs: 6000, attributes: { attempt: 1, after: 'TDX_OPERAND_BUSY' } }]);
    const retried = only(spans, (s) => s.name === 'TDG.MEM.PAGE.ACCEPT' && s.startNs === 9000);
    expect(retried.attributes['tdx.status.code']).toBe('0x0');
  });

  it('the root carries the experiment, its parameters and the seed; actors their thread and CPU', async () => {
    const spans = flattenOtlp((await tracedContention(7, { level: 'lock' })).otlp);
    const root = only(spans, (s) => s.parentSpanId === undefined);
    expect(root.attributes).toMatchObject({
      'cvmsim.experiment': 'contention', 'cvmsim.seed': 7, 'cvmsim.param.vcpus': 2, 'cvmsim.param.jitter': false,
      'cvmsim.virtual_end_ns': 12000,
    });
    const vcpu1 = only(spans, (s) => s.attributes['thread.name'] === 'vcpu1');
    expect(vcpu1.attributes).toMatchObject({ 'thread.name': 'vcpu1', 'cvmsim.cpu': 'vcpu1', 'cvmsim.cpu_time_ns': 9000 });
  });

  it('op level: no wait span; the contended acquisition is an event on the op at the acquire time', async () => {
    const spans = flattenOtlp((await tracedContention(1, { level: 'op' })).otlp);
    expect(spans.map((s) => s.name)).not.toContain('wait zone->lock');
    const caller = only(spans, (s) => s.name === 'accept_memory' && s.startNs === 1000);
    expect(caller.events[0]).toEqual({
      name: 'lock_contended', atNs: 3000,
      attributes: { 'lock.name': 'zone->lock', 'lock.kind': 'spinlock', 'lock.mode': 'exclusive', 'lock.holders': 'vcpu0', 'lock.waiter': 'vcpu1', 'lock.wait_ns': 2000 },
    });
  });

  it('run level: the root, the lanes and one span per actor; events land on the actor', async () => {
    const spans = flattenOtlp((await tracedContention(1, { level: 'run' })).otlp);
    expect(outline(spans)).toEqual([
      'contention@cvmsim [0, 12000] under -',
      'vcpu0@guest [0, 8000] under contention',
      'vcpu0@guest [0, 8000] under vcpu0',
      'vcpu1@guest [0, 12000] under contention',
      'vcpu1@guest [0, 12000] under vcpu1',
    ]);
    expect(only(spans, (s) => s.attributes['thread.name'] === 'vcpu1').events.map((e) => e.name)).toEqual(['lock_busy', 'retry']);
  });

  it('the budget keeps the structure, then the most notable op and a hashed sample; cuts are counted on the parent, the thread and in the summary', async () => {
    // Structure: the root, two lanes, two threads (5 spans); room for 2 of the 6 ops.
    const { otlp, summary } = await tracedContention(1, { level: 'lock', maxSpans: 7 });
    const spans = flattenOtlp(otlp);
    expect(spans).toHaveLength(7);
    expect(summary.spans).toBe(7);
    expect(summary.droppedSpans).toBe(4);
    expect(summary.warnings.join('\n')).toContain('4 of 6 ops cut to fit --trace-max-spans 7');
    // The most notable op: vcpu1's accept_memory, which waited for zone->lock and met a BUSY answer.
    expect(spans.some((s) => s.name === 'accept_memory' && s.startNs === 1000)).toBe(true);
    // Every kept span's parent is kept; the cut ones are counted on kept ancestors and on their threads.
    const ids = new Set(spans.map((s) => s.spanId));
    expect(spans.every((s) => s.parentSpanId === undefined || ids.has(s.parentSpanId))).toBe(true);
    const counted = spans.reduce((n, s) => n + ((s.attributes['cvmsim.dropped_spans'] as number | undefined) ?? 0), 0);
    expect(counted).toBe(4);
    const tallied = spans.reduce((n, s) => n + ((s.attributes['cvmsim.cut_spans'] as number | undefined) ?? 0), 0);
    expect(tallied).toBe(4);
    const root = only(spans, (s) => s.parentSpanId === undefined);
    expect(root.attributes).toMatchObject({ 'cvmsim.trace.ops_seen': 6, 'cvmsim.trace.dropped_spans_total': 4 });
  });

  it('a budget smaller than the structure still keeps the whole structure', async () => {
    const { otlp, summary } = await tracedContention(1, { level: 'lock', maxSpans: 2 });
    expect(outline(flattenOtlp(otlp))).toEqual(outline(flattenOtlp((await tracedContention(1, { level: 'run' })).otlp)));
    expect(summary.droppedSpans).toBe(6);
  });
});

describe('trace structure across actors', () => {
  const OTEL_ENV = {
    OTEL_TRACES_SAMPLER: 'always_off',
    OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT: '2',
    OTEL_SPAN_EVENT_COUNT_LIMIT: '0',
    OTEL_SERVICE_NAME: 'other',
    OTEL_RESOURCE_ATTRIBUTES: 'host.name=somewhere',
  };

  afterEach(() => {
    for (const key of Object.keys(OTEL_ENV)) delete process.env[key];
  });

  /** A guest op exits to KVM, whose handler links back to it. */
  async function linkedRun(level: 'op' | 'phase'): Promise<FlatSpan[]> {
    const file = tempOtlpFile();
    const sim = new Sim({ seed: 3 });
    const session = startTracing(sim, { experiment: 'links', params: {}, seed: 3 }, { ...defaultTraceOptions, level, files: [file] });
    let exitOp = 0;
    const exit = sim.event('tdcall exit');
    function* guest(): Proc {
      const boot = sim.opBegin('boot', { 'cvmsim.level': 'phase' });
      exitOp = sim.opBegin('tdx_accept_memory', {});
      exit.succeed();
      yield sim.sleep(2 * US);
      sim.opEnd(exitOp);
      sim.opEnd(boot);
    }
    function* kvm(): Proc {
      yield exit.wait();
      const handler = sim.opBegin('handle_tdcall', { 'cvmsim.level': 'phase' }, exitOp);
      yield sim.sleep(1 * US);
      sim.opEnd(handler);
    }
    sim.spawn(guest(), { name: 'vcpu0', service: 'guest' });
    sim.spawn(kvm(), { name: 'kvm-worker', service: 'kvm' });
    sim.run();
    await session.finish();
    return flattenOtlp(readFileSync(file));
  }

  it('an op caused by another actor\'s op nests under its own actor and links to the cause', async () => {
    const spans = await linkedRun('op');
    const cause = only(spans, (s) => s.name === 'tdx_accept_memory');
    const handler = only(spans, (s) => s.name === 'handle_tdcall');
    expect(handler.service).toBe('kvm');
    expect(handler.parentSpanId).toBe(only(spans, (s) => s.name === 'kvm-worker').spanId);
    expect(handler.links).toEqual([cause.spanId]);
  });

  it('at phase level ops are filtered (not counted as cut) and a link to one goes to its nearest kept ancestor', async () => {
    const spans = await linkedRun('phase');
    expect(spans.map((s) => s.name).sort()).toEqual(['boot', 'handle_tdcall', 'kvm-worker', 'links', 'vcpu0']);
    expect(only(spans, (s) => s.name === 'handle_tdcall').links).toEqual([only(spans, (s) => s.name === 'boot').spanId]);
    expect(spans.every((s) => s.attributes['cvmsim.dropped_spans'] === undefined)).toBe(true);
  });

  it('a soft lockup is an event on the op that ran with interrupts off', async () => {
    const file = tempOtlpFile();
    const sim = new Sim({ seed: 8, softLockupNs: 20 * S });
    const session = startTracing(sim, { experiment: 'lockup', params: {}, seed: 8 }, { ...defaultTraceOptions, files: [file] });
    const cpu = new Cpu(sim, 'vcpu0');
    function* vcpu(): Proc {
      const id = sim.opBegin('accept_memory', { 'size.bytes': 64 * 1024 ** 3 });
      yield sim.compute(1 * US); // on the CPU first: the watchdog times the CPU's owner
      sim.localIrqDisable();
      yield sim.compute(25 * S);
      sim.localIrqEnable();
      sim.opEnd(id);
    }
    sim.spawn(vcpu(), { name: 'vcpu0', cpu, service: 'guest' });
    sim.run();
    await session.finish();
    const op = only(flattenOtlp(readFileSync(file)), (s) => s.name === 'accept_memory');
    expect(op.events).toEqual([{
      name: 'soft_lockup', atNs: 25 * S + US, attributes: { cpu: 'vcpu0', thread: 'vcpu0', 'stuck.ns': 25 * S, at: 20 * S + US },
    }]);
  });

  it('OTEL_* settings cannot change a trace: sampling stays on, limits and resources stay ours', async () => {
    const plain = await tracedContention(1, { level: 'lock' });
    Object.assign(process.env, OTEL_ENV);
    const withEnv = await tracedContention(1, { level: 'lock' });
    expect(withEnv.summary.spans).toBe(11);
    expect(withEnv.otlp.equals(plain.otlp)).toBe(true);
    expect(withEnv.jaeger).toBe(plain.jaeger);
  });

  it('an error passed to finish() is an exception event with status ERROR on the failing process\'s span and the root', async () => {
    const file = tempOtlpFile();
    const sim = new Sim({ seed: 5 });
    const mutex = new Mutex(sim, 'pamt_lock');
    const session = startTracing(sim, { experiment: 'fails', params: {}, seed: 5 }, { ...defaultTraceOptions, files: [file] });
    function* worker(): Proc {
      yield mutex.acquire();
      sim.opBegin('tdx_pamt_get', {});
      yield sim.sleep(1 * US);
      throw new Error('PAMT refcount went negative');
    }
    sim.spawn(worker(), { name: 'vcpu0', service: 'guest' });
    let error: unknown;
    try {
      sim.run();
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(SimError);
    await session.finish(error);
    const spans = flattenOtlp(readFileSync(file));
    for (const name of ['tdx_pamt_get', 'fails']) {
      const s = only(spans, (x) => x.name === name);
      expect(s.status).toBe(2);
      expect(s.events).toEqual([{ name: 'exception', atNs: 1000, attributes: {
        'exception.type': 'SimError', 'exception.message': expect.stringContaining('PAMT refcount went negative'),
      } }]);
    }
    const op = only(spans, (x) => x.name === 'tdx_pamt_get');
    expect(op.attributes['cvmsim.unfinished']).toBe(true);
  });
});
