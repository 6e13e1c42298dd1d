import { spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BIN, cvmsim, FIXTURE, ROOT, tempDir } from './cli_harness.ts';

/**
 * Messages and small gaps (issue 9, items 6 and 7), through the real CLI: each message names
 * what was given and what was expected, interruptions say which signal and what was kept, and
 * numbers carry no floating-point residue.
 */
const SMALL = ['--set', 'customers=300'];

/** Starts cvmsim, waits until `ready(stderr)`, sends `signal`, and returns how it ended. */
async function interrupt(args: string[], ready: (stderr: string) => boolean, signal: NodeJS.Signals, env: Record<string, string> = {}): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: { ...process.env, CVMSIM_EXTRA_EXPERIMENTS: FIXTURE, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  child.stdout.resume();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, sig) => resolve({ code, signal: sig })));
  while (!ready(stderr)) await new Promise((r) => setTimeout(r, 50));
  child.kill(signal);
  return { ...(await exited), stderr };
}

describe('messages', () => {
  it('1e309 in a config file is reported as Infinity (too large), not "got null"', async () => {
    const dir = tempDir('inf');
    const config = join(dir, 'c.json');
    writeFileSync(config, '{"service_ms": 1e309}\n');
    const r = await cvmsim(['run', 'mm-queue', '--config', config]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`--config ${config}: service_ms: expected a number in [0.001, 1000] (ms), got Infinity (a number beyond the largest double, about 1.8e308)`);
    expect(r.stderr).not.toContain('got null');
  });

  it('a corrupt sweep.json is named as damaged, not as "another sweep"', async () => {
    const dir = tempDir('manifest');
    const args = ['sweep', 'mm-queue', '--grid', 'servers=1,2', ...SMALL, '--out', dir];
    expect((await cvmsim(args)).code).toBe(0);
    writeFileSync(join(dir, 'sweep.json'), '{"sweep": {"experiment": "mm-qu');
    const r = await cvmsim(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--out: .*sweep\.json is damaged \(malformed JSON: .* at line 1 column \d+\), so this directory's journal cannot be trusted to resume from/);
    expect(r.stderr).not.toContain('holds another sweep');
    writeFileSync(join(dir, 'sweep.json'), '[]');
    expect((await cvmsim(args)).stderr).toContain('sweep.json is not a sweep manifest');
  });

  it('--otlp followed by a word that is no URL says so (not "a second experiment")', async () => {
    const r = await cvmsim(['run', 'mm-queue', '--otlp', 'notaurl']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("cvmsim run: bad input: --otlp: expected an http:// or https:// URL, got 'notaurl'");
    const before = await cvmsim(['run', '--otlp', 'notaurl', 'mm-queue']);
    expect(before.stderr).toContain("--otlp: expected an http:// or https:// URL, got 'notaurl'");
  });

  it('a command without arguments given one says "expected none"', async () => {
    const r = await cvmsim(['list', 'extra']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('cvmsim list: bad input: arguments: expected none, got 1: extra\n');
  });

  it('--help lists every exit code', async () => {
    for (const args of [['--help'], ['run', '--help'], ['sweep', '--help']]) {
      const r = await cvmsim(args);
      expect(r.code).toBe(0);
      for (const code of ['  0  ', '  1  ', '  2  ', '  3  ', '  129 130 143  interrupted by SIGHUP, SIGINT, SIGTERM']) expect(r.stdout, args.join(' ')).toContain(code);
      expect(r.stdout).toContain('an output could not be written');
    }
  });

  it('a duplicated --set of one name is refused like a duplicated --seed', async () => {
    const r = await cvmsim(['run', 'mm-queue', '--set', 'servers=2', '--set', 'servers=3']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("cvmsim run: bad input: --set servers: expected once, got it twice ('2' and '3')");
    const seed = await cvmsim(['run', 'mm-queue', '--seed', '1', '--seed', '2']);
    expect(seed.stderr).toContain("--seed: expected once, got it twice ('1' and '2')");
    const sweep = await cvmsim(['sweep', 'mm-queue', '--set', 'servers=2', '--set', 'servers=3']);
    expect(sweep.code).toBe(2);
  });
});

describe('interruptions name the signal and what was kept', () => {
  it('SIGHUP stops a sweep with exit 129, keeping the journal; the same command resumes', async () => {
    const dir = tempDir('hup');
    const args = ['sweep', 'mm-queue', '--grid', 'servers=1,2,3,4', '--seeds', '10', '--set', 'customers=20000', '--jobs', '1', '--out', dir];
    const journaled = () => existsSync(join(dir, 'journal.jsonl')) && readFileSync(join(dir, 'journal.jsonl'), 'utf8').includes('\n');
    const r = await interrupt(args, journaled, 'SIGHUP');
    expect(r.code).toBe(129);
    expect(r.stderr).toContain(`cvmsim sweep: interrupted by SIGHUP: finished runs are kept in ${join(dir, 'journal.jsonl')}; run the same command again to resume`);
    const term = await interrupt(args, (e) => /already done/.test(e), 'SIGTERM');
    expect(term.code).toBe(143);
    expect(term.stderr).toContain('interrupted by SIGTERM: finished runs are kept in');
  });

  it('an interrupted suite (npm start) says nothing was written, not to resume from a journal', async () => {
    const dir = tempDir('suite-int');
    const r = await interrupt(['suite', '--out', dir, '--jobs', '1'], (e) => /runs on 1 worker thread/.test(e), 'SIGINT');
    expect(r.code).toBe(130);
    expect(r.stderr).toContain('cvmsim suite: interrupted by SIGINT: no results were written');
    expect(r.stderr).not.toContain('journal');
    expect(existsSync(join(dir, 'results.json'))).toBe(false);
  });

  it('an interrupted run does not advise resuming from a journal', async () => {
    const r = await interrupt(['run', 'mm-queue', '--set', 'customers=1000000'], (e) => /simulated so far/.test(e), 'SIGINT', { CVMSIM_PROGRESS_EVERY_MS: '100' });
    expect(r.code === 130 || r.signal === 'SIGINT').toBe(true);
    expect(r.stderr).not.toContain('journal');
  });
});

describe('numbers without floating-point residue', () => {
  it('a metric equal over seeds has a CI of 0 (not ± 6e-16), and results.csv has at most 12 significant digits', async () => {
    const dir = tempDir('noise');
    // accept-throughput draws nothing at random: five seeds give five equal values of accept_s,
    // whose mean and spread leave rounding residue before the fix.
    const r = await cvmsim(['sweep', 'accept-throughput', '--seeds', '5', '--out', dir]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/accept_s\s+[\d.]+ ± 0\s+s/);
    expect(r.stdout).not.toMatch(/e-1\d/);
    const rs = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8'));
    expect(rs.aggregates[0].metrics.accept_s.ci95).toBe(0);
    expect(rs.aggregates[0].metrics.accept_s.sd).toBe(0);
    const cells = readFileSync(join(dir, 'results.csv'), 'utf8').split(/[,\r\n]/).filter((c) => /^-?\d+\.\d+$/.test(c));
    expect(cells.length).toBeGreaterThan(10);
    for (const c of cells) expect(c.replace(/^-?0\.0*|[.-]/g, '').length, c).toBeLessThanOrEqual(12);
  });
});

describe('small gaps', () => {
  it('cvmsim --version', async () => {
    const r = await cvmsim(['--version']);
    expect(r.code).toBe(0);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    expect(r.stdout).toBe(`cvmsim ${pkg.version}\n`);
  });

  it('sweep --json prints one JSON object and nothing else on stdout', async () => {
    const dir = tempDir('sweep-json');
    const r = await cvmsim(['sweep', 'mm-queue', '--grid', 'servers=1,2', '--seeds', '2', ...SMALL, '--out', dir, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
    const o = JSON.parse(r.stdout);
    expect(o.runs).toHaveLength(4);
    expect(o.runs[0]).toMatchObject({ seed: 1, params: { servers: 1 } });
    expect(o.runs[0].metrics.customers_served).toBe(300);
    expect(o.aggregates).toHaveLength(2);
    expect(o.files.results).toBe(join(dir, 'results.json'));
  });

  it('--jobs beyond the cores is warned about', async () => {
    const jobs = availableParallelism() + 1;
    const r = await cvmsim(['sweep', 'mm-queue', '--grid', 'servers=1,2', ...SMALL, '--jobs', String(jobs), '--out', tempDir('jobs')]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`warning: --jobs ${jobs} is more than the ${availableParallelism()} core(s) of this machine`);
  });

  it('a long run prints a progress line on stderr (every CVMSIM_PROGRESS_EVERY_MS), stdout unchanged', async () => {
    const r = await cvmsim(['run', 'mm-queue', '--set', 'customers=200000', '--json'], { env: { CVMSIM_PROGRESS_EVERY_MS: '100' } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^run: [\d.]+ m?s simulated so far, \d+ events, \d+ s wall$/m);
    expect(JSON.parse(r.stdout).metrics.customers_served).toBe(200000);
  });
});
