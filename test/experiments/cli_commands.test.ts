import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../experiments/main.ts';
import { cvmsim, tempDir } from './cli_harness.ts';

/** Runs main() in this process, capturing what it writes to stdout. */
async function inProcess(argv: string[]): Promise<{ code: number; stdout: string }> {
  const write = process.stdout.write.bind(process.stdout);
  let stdout = '';
  process.stdout.write = ((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  }) as typeof process.stdout.write;
  try {
    return { code: await main(argv), stdout };
  } finally {
    process.stdout.write = write;
  }
}

const SMALL = ['--set', 'customers=300'];

describe('cvmsim commands, happy paths', () => {
  it('--help works for the program and for every command', async () => {
    const top = await cvmsim(['--help']);
    expect(top.code).toBe(0);
    const commands = ['list', 'describe', 'run', 'sweep', 'merge', 'report', 'regress', 'check-determinism', 'suite'];
    for (const c of commands) expect(top.stdout).toContain(`  ${c} `);
    // One command's help through the bin; every command's through main() in this process.
    const run = await cvmsim(['run', '--help']);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('usage: cvmsim run <experiment> [options]');
    expect(run.stdout).toContain('--trace FILE');
    for (const c of commands) {
      const { code, stdout } = await inProcess([c, '--help']);
      expect(code, c).toBe(0);
      expect(stdout).toContain(`usage: cvmsim ${c}`);
      expect(stdout).toContain('exit codes:\n  0            done\n  1            a run failed');
    }
  });

  it('list and describe show experiments, parameters with defaults, units and ranges, and metrics', async () => {
    const list = await cvmsim(['list']);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/mm-queue\s+How long do customers wait/);
    const d = await cvmsim(['describe', 'mm-queue']);
    expect(d.code).toBe(0);
    expect(d.stdout).toMatch(/servers\s+2\s+an integer in \[1, 64\] \(servers\)/);
    expect(d.stdout).toMatch(/discipline\s+fifo\s+one of fifo/);
    expect(d.stdout).toMatch(/mean_wait_ms\s+ms\s+±5%/);
    expect(d.stdout).toMatch(/customers_served\s+customers\s+exact/);
  });

  it('run prints metrics, fingerprint, both clocks and events; --json prints one object and nothing else', async () => {
    const text = await cvmsim(['run', 'mm-queue', '--seed', '3', ...SMALL]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/customers_served\s+300\s+customers/);
    expect(text.stdout).toMatch(/fingerprint [0-9a-f]{16}/);
    expect(text.stdout).toMatch(/simulated [\d.]+ m?s in [\d.]+ m?s wall, \d+ events executed \(\d+ at equal times\)/);

    const json = await cvmsim(['run', 'mm-queue', '--seed', '3', ...SMALL, '--json']);
    expect(json.code).toBe(0);
    const o = JSON.parse(json.stdout);
    expect(json.stdout.trim().split('\n')).toHaveLength(1);
    expect(o.seed).toBe(3);
    expect(o.parameters.customers).toBe(300);
    expect(o.metrics.customers_served).toBe(300);
    expect(o.fingerprint).toBe(/fingerprint ([0-9a-f]{16})/.exec(text.stdout)![1]);
  });

  it('run --config and --out write the four outputs; --trace writes a Jaeger file', async () => {
    const dir = tempDir('run');
    const config = join(dir, 'c.json');
    writeFileSync(config, JSON.stringify({ servers: 3, customers: 200 }));
    const r = await cvmsim(['run', 'mm-queue', '--config', config, '--set', 'customers=250', '--out', join(dir, 'out'), '--trace', join(dir, 'run.jaeger.json')]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('parameters: arrival_per_ms=1.6 customers=250');
    expect(readdirSync(join(dir, 'out')).sort()).toEqual(['report.html', 'results.csv', 'results.json', 'summary.md']);
    const rs = JSON.parse(readFileSync(join(dir, 'out', 'results.json'), 'utf8'));
    expect(rs.runs[0].params.servers).toBe(3);
    expect(r.stderr).toMatch(/trace [0-9a-f]{32}: \d+ spans/);
    const jaeger = JSON.parse(readFileSync(join(dir, 'run.jaeger.json'), 'utf8'));
    expect(jaeger.data[0].spans.length).toBeGreaterThan(1);
  });

  it('a run that fails (the engine reports a deadlock) exits 1 with the seed and virtual time', async () => {
    const r = await cvmsim(['run', 'mm-queue', '--set', 'lost_release=true', ...SMALL]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/run failed: SimError: deadlock: \d+ process\(es\) blocked/);
    expect(r.stderr).toMatch(/\[seed=1 t=\d+ns\]/);
  });

  it('check-determinism prints the fingerprint, or the first diverging event and exit 1', async () => {
    const ok = await cvmsim(['check-determinism', 'mm-queue', ...SMALL]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^deterministic [0-9a-f]{16} \(mm-queue, seed 1, \d+ events, twice\)/);
    const bad = await cvmsim(['check-determinism', 'mm-queue', ...SMALL, '--set', 'leak_state=true']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('diverged at event #1');
    expect(bad.stderr).toMatch(/first run: {2}t=\d+ns seq=\d+ process source\n {2}second run: t=\d+ns seq=\d+ process source/);
  });
});

describe('cvmsim bad input: exit 2, the field, what was expected and given, nothing written', () => {
  const cases: [string, string[], RegExp][] = [
    ['a value of the wrong type', ['run', 'mm-queue', '--set', 'servers=abc'], /--set servers: expected an integer in \[1, 64\] \(servers\), got 'abc'/],
    ['a negative size', ['run', 'mm-queue', '--set', 'service_ms=-2'], /--set service_ms: expected a number in \[0.001, 1000\] \(ms\), got '-2'/],
    ['an unknown parameter', ['run', 'mm-queue', '--set', 'sevrers=2'], /unknown parameter 'sevrers' of mm-queue \(did you mean 'servers'\?\)/],
    ['an unknown experiment', ['run', 'mm-qeueu'], /unknown experiment 'mm-qeueu' \(did you mean 'mm-queue'\?\); known: .*mm-queue/],
    ['an unknown command', ['swep'], /unknown command 'swep' \(did you mean 'sweep'\?\)/],
    ['an unknown option', ['run', 'mm-queue', '--sed', '2'], /--sed: unknown option of 'cvmsim run' \(did you mean '--seed'\?\)/],
    ['a bad seed', ['run', 'mm-queue', '--seed', 'x'], /--seed: expected an integer seed, got 'x'/],
    ['a missing experiment', ['run'], /expected 1 argument\(s\) <experiment>, got 0/],
    ['a bad trace file name', ['run', 'mm-queue', '--trace', 'out.txt'], /--trace: "out.txt" must end in .jaeger.json/],
    ['a bad --jobs', ['sweep', 'mm-queue', '--grid', 'servers=1,2', '--jobs', '0'], /--jobs: expected a number of worker threads in \[1, 1024\], got '0'/],
    ['a bad grid value', ['sweep', 'mm-queue', '--grid', 'servers=1,two'], /--grid servers: expected an integer in \[1, 64\] \(servers\), got 'two'/],
    ['a bad --seeds', ['sweep', 'mm-queue', '--seeds', '0'], /--seeds: expected a number of seeds in \[1, 100000\], got '0'/],
    ['a refused combination', ['run', 'mm-queue', '--set', 'lost_release=true', '--set', 'leak_state=true'], /--set: mm-queue refuses this combination: lost_release=true and leak_state=true plant two bugs at once/],
    ['a refused grid point', ['sweep', 'mm-queue', '--grid', 'lost_release=false,true', '--set', 'leak_state=true'], /--grid point lost_release=true: mm-queue refuses this combination/],
    ['a --shard without an index', ['sweep', 'mm-queue', '--shard', '3'], /--shard: expected i\/n, or n with JOB_COMPLETION_INDEX/],
  ];

  it.each(cases)('%s', async (_name, args, message) => {
    const dir = tempDir('bad');
    const out = join(dir, 'out');
    const withOut = args[0] === 'run' || args[0] === 'sweep' ? [...args, '--out', out] : args;
    const r = await cvmsim(withOut, { env: { JOB_COMPLETION_INDEX: undefined, SLURM_ARRAY_TASK_ID: undefined } });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/bad input: /);
    expect(r.stderr).toMatch(message);
    expect(r.stdout).toBe('');
    expect(existsSync(out)).toBe(false);
  });

  it('a malformed config file names the file, the line and the column', async () => {
    const dir = tempDir('cfg');
    const config = join(dir, 'c.json');
    writeFileSync(config, '{\n  "servers": 3,\n}\n');
    const r = await cvmsim(['run', 'mm-queue', '--config', config, '--out', join(dir, 'out')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`--config ${config}: expected a JSON object of parameter values, got malformed JSON`);
    expect(r.stderr).toMatch(/at line 3 column 1/);
    expect(existsSync(join(dir, 'out'))).toBe(false);
    writeFileSync(config, '[1, 2]');
    const arr = await cvmsim(['run', 'mm-queue', '--config', config]);
    expect(arr.code).toBe(2);
    expect(arr.stderr).toContain('got an array');
    const missing = await cvmsim(['run', 'mm-queue', '--config', join(dir, 'nope.json')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('cannot read the file (ENOENT)');
  });

  it('report and merge of a directory without results exit 2', async () => {
    const dir = tempDir('empty');
    const rep = await cvmsim(['report', dir]);
    expect(rep.code).toBe(2);
    expect(rep.stderr).toContain(`expected a results directory with results.json, but ${join(dir, 'results.json')} does not exist`);
    const m = await cvmsim(['merge', dir, '--out', join(dir, 'merged')]);
    expect(m.code).toBe(2);
    expect(existsSync(join(dir, 'merged'))).toBe(false);
  });
});
