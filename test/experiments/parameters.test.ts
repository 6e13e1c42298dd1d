import { describe, expect, it } from 'vitest';
import { aggregate, studentTQuantile } from '../../experiments/aggregate.ts';
import { parseParamValue, resolveParams } from '../../experiments/params.ts';
import { parseGrid, parseShard, planRuns, shardOf } from '../../experiments/plan.ts';
import { closest } from '../../experiments/suggest.ts';
import { UsageError } from '../../experiments/usage_error.ts';
import { mmQueue } from '../fixtures/queue_experiment.ts';

function usageError(fn: () => unknown): UsageError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    return e as UsageError;
  }
  throw new Error('expected a UsageError');
}

describe('typed parameters', () => {
  it('defaults < config file < --set, keys sorted', () => {
    const p = resolveParams(mmQueue, { config: { path: 'c.json', values: { servers: 4, customers: 10 } }, sets: ['servers=8'] });
    expect(p.servers).toBe(8);
    expect(p.customers).toBe(10);
    expect(p.service_ms).toBe(1);
    expect(Object.keys(p)).toEqual([...Object.keys(p)].sort());
  });

  it.each([
    ['servers=abc', "--set servers: expected an integer in [1, 64] (servers), got 'abc'"],
    ['servers=2.5', "--set servers: expected an integer in [1, 64] (servers), got '2.5'"],
    ['service_ms=-1', "--set service_ms: expected a number in [0.001, 1000] (ms), got '-1'"],
    ['discipline=lifo', "--set discipline: expected one of fifo, got 'lifo'"],
    ['leak_state=yes', "--set leak_state: expected true or false, got 'yes'"],
    ['server=3', "--set server: unknown parameter 'server' of mm-queue (did you mean 'servers'?)"],
    ['servers', "--set: expected key=value, got 'servers'"],
  ])('--set %s is refused naming the field, the expectation and the value', (set, message) => {
    expect(usageError(() => resolveParams(mmQueue, { sets: [set] })).message).toContain(message);
  });

  it('config values keep their JSON types and are checked like --set', () => {
    expect(parseParamValue('f', mmQueue.params.servers!, 3)).toBe(3);
    expect(usageError(() => resolveParams(mmQueue, { config: { path: 'c.json', values: { servers: '3x' } } })).message)
      .toBe("--config c.json: servers: expected an integer in [1, 64] (servers), got '3x'");
    expect(usageError(() => resolveParams(mmQueue, { config: { path: 'c.json', values: { leak_state: 1 } } })).field).toBe('--config c.json: leak_state');
  });

  it('suggests the closest name for a typo and nothing for an unrelated word', () => {
    expect(closest('accpet-boot', ['accept-boot', 'accept-latency'])).toBe('accept-boot');
    expect(closest('memory_gb', ['memory_gib', 'vcpus'])).toBe('memory_gib');
    expect(closest('zebra', ['memory_gib', 'vcpus'])).toBeUndefined();
  });
});

describe('sweep plans', () => {
  const grid = parseGrid(mmQueue, ['servers=1,2,4', 'arrival_per_ms=0.5,0.8'], new Set());
  const spec = { experiment: 'mm-queue', base: resolveParams(mmQueue, {}), grid, seeds: [1, 2] };

  it('numbers runs with the first --grid outermost and seeds innermost', () => {
    const runs = planRuns(spec);
    expect(runs).toHaveLength(12);
    expect(runs.slice(0, 3).map((r) => [r.params.servers, r.params.arrival_per_ms, r.seed])).toEqual([[1, 0.5, 1], [1, 0.5, 2], [1, 0.8, 1]]);
    expect(runs[11]!.params.servers).toBe(4);
  });

  it('shards partition the plan', () => {
    const runs = planRuns(spec);
    const shards = [0, 1, 2].map((index) => shardOf(runs, { index, count: 3 }).map((r) => r.index));
    expect(shards.flat().sort((a, b) => a - b)).toEqual(runs.map((r) => r.index));
    expect(shards[1]).toEqual([1, 4, 7, 10]);
  });

  it('refuses a grid axis given twice, a repeated value, or one also fixed by --set', () => {
    expect(usageError(() => parseGrid(mmQueue, ['servers=1', 'servers=2'], new Set())).field).toBe('--grid servers');
    expect(usageError(() => parseGrid(mmQueue, ['servers=1,1'], new Set())).message).toContain('distinct');
    expect(usageError(() => parseGrid(mmQueue, ['servers=1,2'], new Set(['servers']))).message).toContain('also fixed by --set');
    expect(usageError(() => parseGrid(mmQueue, ['servers=1,x'], new Set())).message).toContain("got 'x'");
  });

  it('--shard i/n, or n with the index from a Kubernetes Indexed Job or a Slurm array', () => {
    expect(parseShard('1/4', {})).toEqual({ index: 1, count: 4 });
    expect(parseShard('4', { JOB_COMPLETION_INDEX: '3' })).toEqual({ index: 3, count: 4 });
    expect(parseShard('4', { SLURM_ARRAY_TASK_ID: '2' })).toEqual({ index: 2, count: 4 });
    expect(parseShard('4', { SLURM_ARRAY_TASK_ID: '4', SLURM_ARRAY_TASK_MIN: '1' })).toEqual({ index: 3, count: 4 });
    expect(parseShard(undefined, { JOB_COMPLETION_INDEX: '1' })).toBeNull();
    expect(usageError(() => parseShard('4', {})).message).toContain('JOB_COMPLETION_INDEX');
    expect(usageError(() => parseShard('4/4', {})).message).toContain('[0, 3]');
    expect(usageError(() => parseShard('a/b', {})).field).toBe('--shard');
  });
});

describe('aggregates over seeds', () => {
  it('Student t quantiles match the tables', () => {
    expect(studentTQuantile(0.975, 1)).toBeCloseTo(12.7062, 4);
    expect(studentTQuantile(0.975, 4)).toBeCloseTo(2.7764, 4);
    expect(studentTQuantile(0.975, 9)).toBeCloseTo(2.2622, 4);
    expect(studentTQuantile(0.975, 1e6)).toBeCloseTo(1.96, 3);
  });

  it('mean, sample standard deviation and the 95% CI half-width', () => {
    const a = aggregate([1, 2, 3, 4, 5]);
    expect(a.mean).toBe(3);
    expect(a.sd).toBeCloseTo(Math.sqrt(2.5), 12);
    expect(a.ci95).toBeCloseTo((2.776445 * Math.sqrt(2.5)) / Math.sqrt(5), 5);
    expect(aggregate([7]).ci95).toBeNull();
  });
});
