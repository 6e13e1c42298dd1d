import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Cpu, Sim, US, type Proc } from '../../sim/index.ts';
import { defaultTraceOptions, resolveOtlpEndpoint, startTracing } from '../../traces/index.ts';
import { flattenOtlp, tracedContention } from './contention_scenario.ts';

interface Received {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** A real OTLP/HTTP receiver on 127.0.0.1 (an ephemeral port) that records each request. */
async function startReceiver(answer: (res: ServerResponse) => void = (res) => {
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.end('{}');
}): Promise<{ url: string; received: Received[]; server: Server }> {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks) });
      answer(res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push(server);
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received, server };
}

const servers: Server[] = [];

afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((resolve) => s.close(resolve));
  }
});

beforeAll(() => {
  // Bound every export attempt at 1 s (the exporter reads this; the default is 10 s).
  process.env.OTEL_EXPORTER_OTLP_TRACES_TIMEOUT = '1000';
});

/** A port that was just open and is now closed: connections to it are refused. */
async function closedPort(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return `http://127.0.0.1:${port}`;
}

describe('live export over OTLP/HTTP', () => {
  it('the receiver gets the exact bytes of the .otlp.json file, as JSON on /v1/traces', async () => {
    const rx = await startReceiver();
    const run = await tracedContention(4, { level: 'lock', otlp: rx.url });
    expect(rx.received).toHaveLength(1);
    const [req] = rx.received;
    expect(req!.method).toBe('POST');
    expect(req!.url).toBe('/v1/traces');
    expect(req!.headers['content-type']).toBe('application/json');
    expect(req!.body.equals(run.otlp)).toBe(true);
    expect(flattenOtlp(req!.body)).toEqual(flattenOtlp(run.otlp));
    expect(run.summary.otlp).toEqual({ endpoint: `${rx.url}/v1/traces`, ok: true });
    expect(run.summary.exitCode).toBe(0);
    expect(run.summary.warnings).toEqual([]);
    expect(run.summary.jaegerUrl).toBe(`http://127.0.0.1:16686/trace/${run.summary.traceId}`);
  });

  it('a trace larger than one request goes in ordered batches whose spans together equal the file\'s', async () => {
    const rx = await startReceiver();
    const file = join(mkdtempSync(join(tmpdir(), 'cvmsim-traces-')), 'big.otlp.json');
    const sim = new Sim({ seed: 9 });
    const session = startTracing(sim, { experiment: 'many-ops', params: {}, seed: 9 }, { ...defaultTraceOptions, files: [file], otlp: rx.url });
    const cpu = new Cpu(sim, 'vcpu0');
    function* worker(): Proc {
      for (let i = 0; i < 5000; i++) {
        const id = sim.opBegin('clear_page', { pfn: BigInt(i) });
        yield sim.compute(1 * US);
        sim.opEnd(id);
      }
    }
    sim.spawn(worker(), { name: 'vcpu0', cpu, service: 'guest' });
    sim.run();
    const summary = await session.finish();
    expect(summary.spans).toBe(5003); // the root, the lane of vcpu0, the thread, 5000 ops
    expect(summary.otlp?.ok).toBe(true);
    expect(rx.received.length).toBe(3);
    const sent = rx.received.flatMap((r) => flattenOtlp(r.body).map((s) => s.spanId));
    expect(sent).toEqual(flattenOtlp(readFileSync(file)).map((s) => s.spanId));
  });

  it('an endpoint that answers an error: one warning naming it and the status; exit 0, or 3 when required', async () => {
    const rx = await startReceiver((res) => {
      res.writeHead(400, { 'Content-Type': 'text/plain' });
      res.end('malformed request');
    });
    const lenient = await tracedContention(4, { otlp: rx.url });
    expect(lenient.summary.exitCode).toBe(0);
    expect(lenient.summary.otlp).toMatchObject({ endpoint: `${rx.url}/v1/traces`, ok: false });
    expect(lenient.summary.warnings).toHaveLength(1);
    expect(lenient.summary.warnings[0]).toContain(`${rx.url}/v1/traces`);
    expect(lenient.summary.warnings[0]).toContain('HTTP 400');
    expect(lenient.summary.warnings[0]).not.toContain('\n');
    const strict = await tracedContention(4, { otlp: rx.url, otlpRequired: true });
    expect(strict.summary.exitCode).toBe(3);
  });
});

describe('endpoint down', () => {
  it('warns naming the endpoint and the error, still writes the files, and exits 0', async () => {
    const url = await closedPort();
    const run = await tracedContention(4, { otlp: url });
    expect(run.summary.exitCode).toBe(0);
    expect(run.summary.otlp).toMatchObject({ endpoint: `${url}/v1/traces`, ok: false });
    expect(run.summary.otlp?.error).toContain('ECONNREFUSED');
    expect(run.summary.warnings).toHaveLength(1);
    expect(run.summary.warnings[0]).toMatch(new RegExp(`^warning: OTLP export to ${url}/v1/traces failed .*ECONNREFUSED`));
    for (const f of run.summary.files) expect(existsSync(f)).toBe(true);
    expect(flattenOtlp(run.otlp)).toHaveLength(run.summary.spans);
  });

  it('exits 3 with --otlp-required', async () => {
    const run = await tracedContention(4, { otlp: await closedPort(), otlpRequired: true });
    expect(run.summary.exitCode).toBe(3);
    expect(run.summary.files).toHaveLength(3);
  });

  it('an endpoint that accepts and never answers does not hang the run', async () => {
    const rx = await startReceiver(() => {});
    const run = await tracedContention(4, { otlp: rx.url });
    expect(run.summary.otlp?.ok).toBe(false);
    expect(run.summary.exitCode).toBe(0);
  });
});

describe('the OTLP endpoint', () => {
  const env = (vars: Record<string, string>) => (name: string) => vars[name];

  it.each([
    ['', {}, 'http://localhost:4318/v1/traces'],
    ['http://jaeger:4318', {}, 'http://jaeger:4318/v1/traces'],
    ['http://jaeger:4318/', {}, 'http://jaeger:4318/v1/traces'],
    ['https://otel.example/v1/traces', {}, 'https://otel.example/v1/traces'],
    ['', { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }, 'http://collector:4318/v1/traces'],
    ['', { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://t:9/custom' }, 'http://t:9/custom'],
    ['http://explicit:4318', { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://t:9/custom' }, 'http://explicit:4318/v1/traces'],
  ])('--otlp %j with %j -> %s', (explicit, vars, expected) => {
    expect(resolveOtlpEndpoint(explicit, env(vars))).toBe(expected);
  });
});
