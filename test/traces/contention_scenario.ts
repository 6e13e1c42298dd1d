import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cpu, Sim, Spinlock, TryLock, US, type Proc } from '../../sim/index.ts';
import { defaultTraceOptions, startTracing, type TraceOptions, type TraceSummary } from '../../traces/index.ts';

/** TDX_OPERAND_BUSY as the TDX module spec prints it (models carry it as an attribute). */
export const TDX_OPERAND_BUSY = 0x8000020000000000n;

/**
 * Two vCPU threads contend on a spinlock, then on a TDX-module try-lock. With `jitter` off the
 * timeline is exact (ns):
 *   vcpu0: accept_memory [0, 8000]: zone->lock held [0, 3000]; TDG.MEM.PAGE.ACCEPT in the TDX
 *          module [3000, 8000] holding sept_lock.
 *   vcpu1: sleeps 1000; accept_memory [1000, 12000]: spins on zone->lock [1000, 3000] (held by
 *          vcpu0), holds it [3000, 6000]; TDG.MEM.PAGE.ACCEPT at 6000 answers TDX_OPERAND_BUSY
 *          (sept_lock held by vcpu0); a retry event; backs off 3000; TDG.MEM.PAGE.ACCEPT again
 *          [9000, 12000], acquired.
 * With `jitter` on, vcpu1's first sleep is drawn from the seed's stream, so seeds differ in time.
 */
export function contentionScenario(sim: Sim, jitter = false): void {
  const vcpus = [new Cpu(sim, 'vcpu0'), new Cpu(sim, 'vcpu1')];
  const zoneLock = new Spinlock(sim, 'zone->lock');
  const septLock = new TryLock(sim, 'sept_lock');

  function* pageAccept(holdNs: number): Proc<boolean> {
    const id = sim.opBegin('TDG.MEM.PAGE.ACCEPT', { gpa: 0x100000n, level: '4K' }, 0, 'tdx-module');
    const answer = septLock.tryAcquire('exclusive', 'guest');
    if (answer !== 'acquired') {
      sim.opEnd(id, { 'tdx.status': 'TDX_OPERAND_BUSY', 'tdx.status.code': TDX_OPERAND_BUSY });
      return false;
    }
    yield sim.compute(holdNs);
    septLock.release('exclusive');
    sim.opEnd(id, { 'tdx.status': 'TDX_SUCCESS', 'tdx.status.code': 0n });
    return true;
  }

  function* vcpu(index: number): Proc {
    if (index === 1) yield sim.sleep(jitter ? 1 * US + sim.rng('test.vcpu1.start').int(500) : 1 * US);
    const id = sim.opBegin('accept_memory', { start: 0x100000n, end: 0x101000n, 'size.bytes': 4096 });
    yield zoneLock.acquire({ irqsave: true });
    yield sim.compute(3 * US);
    zoneLock.release({ irqrestore: true });
    let attempt = 0;
    while (!(yield* pageAccept(5 * US - index * 2 * US))) {
      attempt++;
      sim.instant('retry', { attempt, after: 'TDX_OPERAND_BUSY' });
      yield sim.compute(3 * US);
    }
    sim.opEnd(id);
  }

  vcpus.forEach((cpu, i) => sim.spawn(vcpu(i), { name: `vcpu${i}`, cpu, service: 'guest' }));
}

export interface TracedRun {
  summary: TraceSummary;
  dir: string;
  jaeger: string;
  otlp: Buffer;
  perfetto: string;
}

/** A fresh directory and an .otlp.json path in it. */
export function tempOtlpFile(): string {
  return join(mkdtempSync(join(tmpdir(), 'cvmsim-traces-')), 'run.otlp.json');
}

/** Runs the scenario traced, writing all three files to a fresh directory. */
export async function tracedContention(seed: number, options: Partial<TraceOptions> = {}, jitter = false): Promise<TracedRun> {
  const dir = mkdtempSync(join(tmpdir(), 'cvmsim-traces-'));
  const files = [join(dir, 'run.jaeger.json'), join(dir, 'run.otlp.json'), join(dir, 'run.perfetto.json')];
  const sim = new Sim({ seed });
  const session = startTracing(sim, { experiment: 'contention', params: { vcpus: 2, jitter } , seed }, { ...defaultTraceOptions, files, ...options });
  contentionScenario(sim, jitter);
  sim.run();
  const summary = await session.finish();
  return {
    summary,
    dir,
    jaeger: readFileSync(files[0]!, 'utf8'),
    otlp: readFileSync(files[1]!),
    perfetto: readFileSync(files[2]!, 'utf8'),
  };
}

/** One OTLP/JSON span flattened with its service, times as virtual ns from the default epoch. */
export interface FlatSpan {
  service: string;
  name: string;
  spanId: string;
  parentSpanId: string | undefined;
  startNs: number;
  endNs: number;
  attributes: Record<string, unknown>;
  events: { name: string; atNs: number; attributes: Record<string, unknown> }[];
  links: string[];
  /** OTLP status code: 0 unset, 1 ok, 2 error. */
  status: number;
}

const EPOCH_NS = BigInt(Date.parse('2026-01-01T00:00:00Z')) * 1_000_000n;

export function virtualNs(unixNano: string): number {
  return Number(BigInt(unixNano) - EPOCH_NS);
}

type OtlpValue = { stringValue?: string; intValue?: number | string; boolValue?: boolean; doubleValue?: number };
type OtlpKv = { key: string; value: OtlpValue };

function attrs(list: OtlpKv[] | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const { key, value } of list ?? []) {
    out[key] = value.stringValue ?? (value.intValue !== undefined ? Number(value.intValue) : undefined) ?? value.boolValue ?? value.doubleValue;
  }
  return out;
}

/** Flattens an ExportTraceServiceRequest in OTLP/JSON. */
export function flattenOtlp(body: Buffer | string): FlatSpan[] {
  const req = JSON.parse(body.toString()) as {
    resourceSpans: { resource: { attributes: OtlpKv[] }; scopeSpans: { spans: any[] }[] }[];
  };
  const out: FlatSpan[] = [];
  for (const rs of req.resourceSpans) {
    const service = String(attrs(rs.resource.attributes)['service.name']);
    for (const ss of rs.scopeSpans) {
      for (const s of ss.spans) {
        out.push({
          service,
          name: s.name,
          spanId: s.spanId,
          parentSpanId: s.parentSpanId,
          startNs: virtualNs(s.startTimeUnixNano),
          endNs: virtualNs(s.endTimeUnixNano),
          attributes: attrs(s.attributes),
          events: (s.events ?? []).map((e: any) => ({ name: e.name, atNs: virtualNs(e.timeUnixNano), attributes: attrs(e.attributes) })),
          links: (s.links ?? []).map((l: any) => l.spanId),
          status: s.status?.code ?? 0,
        });
      }
    }
  }
  return out;
}
