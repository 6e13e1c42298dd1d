import { describe, expect, it } from 'vitest';
import { Sim } from '../../sim/index.ts';
import { defaultTraceOptions, parseTraceFlags, startTracing, traceFileForRun, TraceUsageError } from '../../traces/index.ts';
import { parseEpoch } from '../../traces/options.ts';

function usageError(fn: () => unknown): TraceUsageError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(TraceUsageError);
    return e as TraceUsageError;
  }
  throw new Error('expected a TraceUsageError');
}

describe('parseTraceFlags', () => {
  it('defaults when no trace flag is given, leaving the other arguments in order', () => {
    const { options, rest } = parseTraceFlags(['run', 'accept-policy', '--set', 'mem=4GiB', '--seed', '3']);
    expect(options).toEqual(defaultTraceOptions);
    expect(rest).toEqual(['run', 'accept-policy', '--set', 'mem=4GiB', '--seed', '3']);
    expect(defaultTraceOptions).toEqual({ files: [], otlp: null, otlpRequired: false, level: 'op', maxSpans: 100000, epoch: '2026-01-01T00:00:00Z' });
  });

  it('takes every flag in both --flag value and --flag=value forms; --trace repeats', () => {
    const { options, rest } = parseTraceFlags([
      'run', '--trace', 'a.jaeger.json', '--trace=b.otlp.json', '--trace', 'c.perfetto.json', '--trace-level=lock',
      '--trace-max-spans', '500', '--trace-epoch', 'now', '--otlp', 'http://jaeger:4318', '--otlp-required', 'exp',
    ]);
    expect(options).toEqual({
      files: ['a.jaeger.json', 'b.otlp.json', 'c.perfetto.json'], otlp: 'http://jaeger:4318', otlpRequired: true,
      level: 'lock', maxSpans: 500, epoch: 'now',
    });
    expect(rest).toEqual(['run', 'exp']);
  });

  it('--otlp takes a URL only when one follows, so `--otlp <experiment>` keeps the experiment', () => {
    expect(parseTraceFlags(['run', '--otlp', 'accept-policy'])).toEqual({ options: { ...defaultTraceOptions, files: [], otlp: '' }, rest: ['run', 'accept-policy'] });
    expect(parseTraceFlags(['--otlp']).options.otlp).toBe('');
    expect(parseTraceFlags(['--otlp=https://otel.example']).options.otlp).toBe('https://otel.example');
  });

  it('--otlp-required alone turns export on', () => {
    expect(parseTraceFlags(['--otlp-required']).options).toMatchObject({ otlp: '', otlpRequired: true });
  });

  it.each([
    [['--trace', 'out.json'], '--trace', '.jaeger.json, .otlp.json, .perfetto.json'],
    [['--trace'], '--trace', 'needs a value'],
    [['--trace', '.jaeger.json'], '--trace', 'must end in'],
    [['--trace-level', 'span'], '--trace-level', 'run, phase, op, lock'],
    [['--trace-max-spans', '0'], '--trace-max-spans', 'positive integer'],
    [['--trace-max-spans=1e5'], '--trace-max-spans', 'positive integer'],
    [['--trace-epoch', '2026-01-01T00:00:00'], '--trace-epoch', 'with a zone'],
    [['--trace-epoch', 'yesterday'], '--trace-epoch', '"now"'],
    [['--trace-epoch', '1970-01-01T00:00:00Z'], '--trace-epoch', 'after 1970'],
    [['--otlp=localhost:4318'], '--otlp', 'http://'],
    [['--otlp-required=yes'], '--otlp-required', 'takes no value'],
  ])('%j is refused naming %s and what it allows', (args, field, allowed) => {
    const e = usageError(() => parseTraceFlags(args));
    expect(e.field).toBe(field);
    expect(e.message).toContain(allowed);
  });
});

describe('options given through the API', () => {
  it('startTracing validates them too', () => {
    const e = usageError(() => startTracing(new Sim({ seed: 1 }), { experiment: 'x', params: {}, seed: 1 }, { ...defaultTraceOptions, level: 'verbose' as never }));
    expect(e.field).toBe('--trace-level');
  });

  it('one observer per Sim', () => {
    const sim = new Sim({ seed: 1 });
    startTracing(sim, { experiment: 'x', params: {}, seed: 1 }, defaultTraceOptions);
    expect(() => startTracing(sim, { experiment: 'x', params: {}, seed: 1 }, defaultTraceOptions)).toThrow(/already has an observer/);
  });
});

describe('epochs and file names', () => {
  it('an ISO epoch keeps nanoseconds and honours its offset', () => {
    expect(parseEpoch('2026-01-01T00:00:00Z')).toEqual([1767225600, 0]);
    expect(parseEpoch('2026-01-01T01:00:00.123456789+01:00')).toEqual([1767225600, 123456789]);
    expect(parseEpoch('2026-01-01')).toEqual([1767225600, 0]);
    expect(parseEpoch('now', () => 1767225600123)).toEqual([1767225600, 123000000]);
  });

  it('a sweep tags each run\'s file before its ending', () => {
    expect(traceFileForRun('out/run.jaeger.json', 'mem=4G-s2')).toBe('out/run.mem=4G-s2.jaeger.json');
    expect(traceFileForRun('t.otlp.json', 's1')).toBe('t.s1.otlp.json');
  });
});
