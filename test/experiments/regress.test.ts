import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BASELINES_DIR } from '../../experiments/paths.ts';
import { cvmsim, tempDir } from './cli_harness.ts';

describe('cvmsim regress', () => {
  const dir = tempDir('baselines');
  const file = join(dir, 'mm-queue.json');

  it('--update creates a baseline (default case), which then passes', async () => {
    const up = await cvmsim(['regress', '--update', '--baselines', dir, 'mm-queue']);
    expect(up.code, up.stderr).toBe(0);
    expect(up.stdout).toContain(`updated ${file} (1 case(s))`);
    const b = JSON.parse(readFileSync(file, 'utf8'));
    expect(b.cases[0].seed).toBe(1);
    expect(b.cases[0].params.customers).toBe(2000);
    expect(b.cases[0].metrics.customers_served).toBe(2000);

    // A second, hand-written case with partial params; --update fills it in.
    b.cases.push({ params: { servers: 3, customers: 500 }, seed: 2 });
    writeFileSync(file, JSON.stringify(b));
    const up2 = await cvmsim(['regress', '--update', '--baselines', dir, 'mm-queue']);
    expect(up2.code, up2.stderr).toBe(0);
    const b2 = JSON.parse(readFileSync(file, 'utf8'));
    expect(b2.cases[1].params).toMatchObject({ servers: 3, customers: 500, service_ms: 1 });
    expect(b2.cases[1].metrics.customers_served).toBe(500);

    const ok = await cvmsim(['regress', '--baselines', dir, 'mm-queue']);
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stdout).toContain('regress: ok: 2 case(s) of 1 experiment(s), 10 metric(s) compared, 0 outside tolerance');
  });

  it('fails with a table of metric, baseline, now, difference and tolerance for every breach', async () => {
    const b = JSON.parse(readFileSync(file, 'utf8'));
    const wait = b.cases[0].metrics.mean_wait_ms;
    b.cases[0].metrics.mean_wait_ms = wait * 1.2; // now is 16.7% below: outside ±5%
    b.cases[0].metrics.utilisation += 0.005; // inside ±0.01: not a breach
    b.cases[1].metrics.max_queue += 1; // exact: a breach
    writeFileSync(file, JSON.stringify(b));
    const r = await cvmsim(['regress', '--baselines', dir, 'mm-queue']);
    expect(r.code).toBe(1);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toBe('regress: 2 metric(s) outside tolerance');
    expect(lines[2]).toMatch(/^experiment\s+case\s+metric\s+baseline\s+now\s+difference\s+tolerance$/);
    const rows = lines.slice(4, 6);
    expect(rows[0]).toMatch(/^mm-queue\s+seed 1\s+mean_wait_ms\s+[\d.]+\s+[\d.]+\s+-[\d.]+ \(-16\.67%\)\s+±5%$/);
    expect(rows[1]).toMatch(/^mm-queue\s+seed 2 servers=3 customers=500\s+max_queue\s+\d+\s+\d+\s+-1 \(-[\d.]+%\)\s+exact$/);
    expect(r.stdout).toContain('regress: FAILED: 2 case(s) of 1 experiment(s), 10 metric(s) compared, 2 outside tolerance');
  });

  it('a registered experiment named without a baseline fails; a malformed baseline is bad input', async () => {
    const empty = tempDir('nobaseline');
    const none = await cvmsim(['regress', '--baselines', empty, 'mm-queue']);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain(`mm-queue: no baseline (${join(empty, 'mm-queue.json')}); create it with \`cvmsim regress --update mm-queue\``);
    writeFileSync(join(empty, 'mm-queue.json'), '{"experiment": "mm-queue", "cases": [{"params": {"servers": "many"}, "seed": 1}]}');
    const bad = await cvmsim(['regress', '--baselines', empty, 'mm-queue']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain(`${join(empty, 'mm-queue.json')} cases[0].params: servers: expected an integer in [1, 64] (servers), got 'many'`);
  });

  it('a baseline with a declared metric deleted fails (it would no longer be checked), and --update puts it back', async () => {
    const d = tempDir('deleted-metric');
    const path = join(d, 'mm-queue.json');
    expect((await cvmsim(['regress', '--update', '--baselines', d, 'mm-queue'])).code).toBe(0);
    const b = JSON.parse(readFileSync(path, 'utf8'));
    delete b.cases[0].metrics.p99_wait_ms;
    writeFileSync(path, JSON.stringify(b));
    const r = await cvmsim(['regress', '--baselines', d, 'mm-queue']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^mm-queue\s+seed 1\s+p99_wait_ms\s+missing\s+[\d.]+\s+not in the baseline \(regress --update adds it\)$/m);
    expect(r.stdout).toContain('regress: FAILED: 1 case(s) of 1 experiment(s), 5 metric(s) compared, 1 outside tolerance');
    expect((await cvmsim(['regress', '--update', '--baselines', d, 'mm-queue'])).code).toBe(0);
    expect(JSON.parse(readFileSync(path, 'utf8')).cases[0].metrics.p99_wait_ms).toBeGreaterThan(0);
    expect((await cvmsim(['regress', '--baselines', d, 'mm-queue'])).code).toBe(0);
  });

  it('"cases": [] is bad input (it would check nothing); --update fills in the default case', async () => {
    const d = tempDir('no-cases');
    const path = join(d, 'mm-queue.json');
    writeFileSync(path, '{"experiment": "mm-queue", "cases": []}\n');
    const r = await cvmsim(['regress', '--baselines', d, 'mm-queue']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`cvmsim regress: bad input: ${path}: expected at least one case, got "cases": [] (it would check nothing)`);
    expect(r.stdout).toBe('');
    const up = await cvmsim(['regress', '--update', '--baselines', d, 'mm-queue']);
    expect(up.code, up.stderr).toBe(0);
    expect(up.stdout).toContain(`updated ${path} (1 case(s))`);
  });

  it('the committed accept-throughput baseline passes, and a temp copy with a changed value fails', async () => {
    const copy = tempDir('real-baselines');
    const path = join(copy, 'accept-throughput.json');
    copyFileSync(join(BASELINES_DIR, 'accept-throughput.json'), path);
    const ok = await cvmsim(['regress', '--baselines', copy, 'accept-throughput'], { fixture: false });
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/regress: ok: \d+ case\(s\) of 1 experiment\(s\), \d+ metric\(s\) compared, 0 outside tolerance/);
    const b = JSON.parse(readFileSync(path, 'utf8'));
    b.cases[0].metrics.accept_s *= 1.1;
    writeFileSync(path, JSON.stringify(b));
    const bad = await cvmsim(['regress', '--baselines', copy, 'accept-throughput'], { fixture: false });
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/^accept-throughput\s+seed 1\s+accept_s\s+[\d.]+\s+[\d.]+\s+-[\d.]+ \(-9\.09\d*%\)\s+±5%$/m);
  });
});
