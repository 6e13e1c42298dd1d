import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BIN, cvmsim, FIXTURE, ROOT, tempDir } from './cli_harness.ts';

const SWEEP = ['sweep', 'mm-queue', '--grid', 'servers=1,2,3', '--grid', 'arrival_per_ms=0.6,0.9', '--seeds', '3', '--set', 'customers=400'];
const OUTPUTS = ['results.json', 'results.csv', 'summary.md', 'report.html'];

function read(dir: string, file: string): string {
  return readFileSync(join(dir, file), 'utf8');
}

function journalLines(dir: string): string[] {
  const path = join(dir, 'journal.jsonl');
  return existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter((l) => l !== '') : [];
}

describe('cvmsim sweep', () => {
  const base = tempDir('sweep');
  const one = join(base, 'jobs1');

  it('writes results with aggregates over seeds (mean, sd, 95% CI) in plan order', async () => {
    const r = await cvmsim([...SWEEP, '--jobs', '1', '--out', one]);
    expect(r.code, r.stderr).toBe(0);
    for (const f of OUTPUTS) expect(existsSync(join(one, f)), f).toBe(true);
    expect(r.stderr).toContain('sweep mm-queue, servers in {1, 2, 3} x arrival_per_ms in {0.6, 0.9}, seeds 1..3: 18 runs, 1 worker thread(s)');
    expect(r.stderr).toMatch(/sweep: 18\/18 runs done \(100%\)/);
    const rs = JSON.parse(read(one, 'results.json'));
    expect(rs.runs).toHaveLength(18);
    expect(rs.runs.map((x: { seed: number }) => x.seed).slice(0, 4)).toEqual([1, 2, 3, 1]);
    expect(rs.aggregates).toHaveLength(6);
    const m = rs.aggregates[0].metrics.mean_wait_ms;
    const values = rs.runs.slice(0, 3).map((x: { metrics: Record<string, number> }) => x.metrics.mean_wait_ms);
    const mean = values.reduce((a: number, b: number) => a + b, 0) / 3;
    expect(m.n).toBe(3);
    expect(m.mean).toBeCloseTo(mean, 12);
    const sd = Math.sqrt(values.reduce((a: number, v: number) => a + (v - mean) ** 2, 0) / 2);
    expect(m.sd).toBeCloseTo(sd, 12);
    expect(m.ci95).toBeCloseTo((4.302653 * sd) / Math.sqrt(3), 6);
    const csv = read(one, 'results.csv').split('\r\n');
    expect(csv[0]).toMatch(/^experiment,seed,arrival_per_ms,customers,.*,fingerprint,virtual_ns,events_executed,error$/);
    expect(csv).toHaveLength(20);
    expect(read(one, 'summary.md')).toMatch(/\| servers \| arrival_per_ms \| seeds \| customers_served \(customers\) \|/);
  });

  it('says so when more seeds repeated the same run (a deterministic configuration), and not when seeds vary it', async () => {
    const still = join(base, 'deterministic');
    const r = await cvmsim(['sweep', 'accept-throughput', '--grid', 'vcpus=1,2', '--seeds', '2', '--set', 'memory_gib=1', '--jobs', '1', '--out', still], { fixture: false });
    expect(r.code, r.stderr).toBe(0);
    expect(read(still, 'summary.md')).toContain('Every seed gave the same results');
    expect(read(still, 'report.html')).toContain('Every seed gave the same results');
    expect(read(one, 'summary.md')).not.toContain('Every seed gave the same results'); // mm-queue's arrivals are random
  }, 60_000);

  it('gives the same bytes with --jobs 2', async () => {
    const two = join(base, 'jobs2');
    const r = await cvmsim([...SWEEP, '--jobs', '2', '--out', two]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('2 worker thread(s)');
    for (const f of OUTPUTS) expect(read(two, f), f).toBe(read(one, f));
  });

  it('gives the same bytes from two shards merged, the shard index taken from JOB_COMPLETION_INDEX', async () => {
    const shards = [0, 1].map((i) => join(base, `shard${i}`));
    const rs = await Promise.all(shards.map((dir, i) => cvmsim([...SWEEP, '--shard', '2', '--jobs', '1', '--out', dir], { env: { JOB_COMPLETION_INDEX: String(i) } })));
    rs.forEach((r) => expect(r.code, r.stderr).toBe(0));
    expect(rs[1]!.stderr).toContain('shard 1/2: 9 runs');
    expect(JSON.parse(read(shards[1]!, 'results.json')).shard).toEqual({ index: 1, count: 2 });

    const missing = await cvmsim(['merge', shards[0]!, '--out', join(base, 'bad-merge')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('expected all 2 shards, missing shard(s) 1/2');
    expect(existsSync(join(base, 'bad-merge'))).toBe(false);
    const twice = await cvmsim(['merge', shards[0]!, shards[0]!, '--out', join(base, 'bad-merge')]);
    expect(twice.code).toBe(2);
    expect(twice.stderr).toContain('got shard 0/2 twice');

    const merged = join(base, 'merged');
    const m = await cvmsim(['merge', shards[1]!, shards[0]!, '--out', merged]);
    expect(m.code, m.stderr).toBe(0);
    expect(m.stdout).toContain('merged 2 shard(s): 18 runs');
    for (const f of OUTPUTS) expect(read(merged, f), f).toBe(read(one, f));
  });

  it('refuses to merge shards of different sweeps', async () => {
    const other = join(base, 'other');
    const r = await cvmsim(['sweep', 'mm-queue', '--grid', 'servers=1,2', '--set', 'customers=50', '--shard', '1/2', '--out', other]);
    expect(r.code, r.stderr).toBe(0);
    const m = await cvmsim(['merge', join(base, 'shard0'), other, '--out', join(base, 'never')]);
    expect(m.code).toBe(2);
    expect(m.stderr).toContain('expected a shard of the same sweep');
  });

  it('resumes from a partial journal with a torn last line, running only what is missing', async () => {
    const dir = join(base, 'partial');
    mkdirSync(dir);
    writeFileSync(join(dir, 'sweep.json'), read(one, 'sweep.json'));
    const done = journalLines(one).slice(0, 7);
    writeFileSync(join(dir, 'journal.jsonl'), `${done.join('\n')}\n`);
    appendFileSync(join(dir, 'journal.jsonl'), done[7 - 1]!.slice(0, 40)); // a crash mid-write
    const r = await cvmsim([...SWEEP, '--jobs', '2', '--out', dir]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('ignored 1 torn line(s)');
    expect(r.stderr).toContain('18 runs, 7 already done (resuming from');
    expect(journalLines(dir)).toHaveLength(7 + 1 + 11);
    for (const f of OUTPUTS) expect(read(dir, f), f).toBe(read(one, f));
  });

  it('refuses an output directory that holds another sweep', async () => {
    const r = await cvmsim([...SWEEP.slice(0, -2), '--set', 'customers=401', '--out', one]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`--out: expected a new directory or one holding this same sweep, but ${one} holds another sweep`);
  });

  it('stops on SIGINT keeping finished runs, and the same command resumes', async () => {
    const dir = join(base, 'interrupted');
    const args = ['sweep', 'mm-queue', '--grid', 'servers=1,2,3,4', '--seeds', '10', '--set', 'customers=20000', '--jobs', '1', '--out', dir];
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: { ...process.env, CVMSIM_EXTRA_EXPERIMENTS: FIXTURE }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    while (journalLines(dir).length < 2) await new Promise((r) => setTimeout(r, 50));
    child.kill('SIGINT');
    expect(await exited).toBe(130);
    expect(stderr).toContain(`interrupted by SIGINT: finished runs are kept in ${join(dir, 'journal.jsonl')}; run the same command again to resume`);
    const kept = journalLines(dir).length;
    expect(kept).toBeGreaterThanOrEqual(2);
    expect(kept).toBeLessThan(40);
    expect(existsSync(join(dir, 'results.json'))).toBe(false);

    const again = await cvmsim(args);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toContain(`40 runs, ${kept} already done`);
    expect(journalLines(dir)).toHaveLength(40);
    const rs = JSON.parse(read(dir, 'results.json'));
    expect(rs.runs).toHaveLength(40);
    expect(rs.runs.every((x: { error?: string }) => x.error === undefined)).toBe(true);
  });

  it('a sweep with failed runs keeps them in the results and exits 1', async () => {
    const dir = join(base, 'failing');
    const r = await cvmsim(['sweep', 'mm-queue', '--grid', 'lost_release=false,true', '--set', 'customers=100', '--out', dir]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/1 run\(s\) failed:\n {2}mm-queue seed 1 .*"lost_release":true.*\n {4}SimError: deadlock/);
    const rs = JSON.parse(read(dir, 'results.json'));
    expect(rs.runs[1].error).toMatch(/^SimError: deadlock/);
    expect(read(dir, 'summary.md')).toContain('### Failed runs (1)');
  });
});
