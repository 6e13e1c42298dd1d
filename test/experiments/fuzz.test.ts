import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cvmsim, ROOT, tempDir } from './cli_harness.ts';

/**
 * `cvmsim fuzz` through the real CLI. The broken invariant lives in a test-only experiment
 * (test/fixtures/fuzz_targets.ts, registered through CVMSIM_EXTRA_EXPERIMENTS for these tests
 * alone): in drain mode a batch of more than 5000 items loses one.
 */
const TARGETS = join(ROOT, 'test', 'fixtures', 'fuzz_targets.ts');
const withTargets = { fixture: false, extra: [TARGETS] };

/** The command after "npx cvmsim " on the line following `label`, as arguments. */
function commandAfter(stdout: string, label: string): string[] {
  const lines = stdout.split('\n');
  const i = lines.findIndex((l) => l.startsWith(label));
  expect(i, `no "${label}" in:\n${stdout}`).toBeGreaterThanOrEqual(0);
  const line = lines[i + 1]!;
  return line.slice(line.indexOf('npx cvmsim ') + 'npx cvmsim '.length).split(' ');
}

describe('cvmsim fuzz', () => {
  it('finds the broken invariant, prints the command that reproduces it, shrinks it to items=5001 mode=drain seed 1, and exits 1', async () => {
    const r = await cvmsim(['fuzz', 'broken-invariant', '--seed', '1', '--runs', '200', '--shrink'], withTargets);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stderr).toContain('fuzz: root seed 1 (repeat with --seed 1), broken-invariant;');
    expect(r.stdout).toMatch(/fuzz: configuration #\d+ failed \(broken-invariant, seed \d+\):\n {2}SimAssertionError: every item is processed exactly once/);
    // The reproduction names the experiment, every parameter off its default, and the seed.
    const found = commandAfter(r.stdout, 'reproduce:');
    expect(found.slice(0, 2)).toEqual(['run', 'broken-invariant']);
    expect(found).toContain('mode=drain');
    expect(found.join(' ')).toMatch(/--seed \d+$/);
    expect(r.stdout).toContain(`CVMSIM_EXTRA_EXPERIMENTS=${TARGETS} npx cvmsim run broken-invariant`);

    expect(r.stdout).toMatch(/shrunk in \d+ runs; reproduce:/);
    const shrunk = commandAfter(r.stdout, 'shrunk in');
    expect(shrunk).toEqual(['run', 'broken-invariant', '--set', 'items=5001', '--set', 'mode=drain', '--seed', '1']);

    // Both commands do reproduce the failure; one item fewer passes.
    for (const args of [found, shrunk]) {
      const again = await cvmsim(args, withTargets);
      expect(again.code, args.join(' ')).toBe(1);
      expect(again.stderr).toContain('SimAssertionError: every item is processed exactly once');
    }
    const boundary = await cvmsim(['run', 'broken-invariant', '--set', 'items=5000', '--set', 'mode=drain'], withTargets);
    expect(boundary.code, boundary.stderr).toBe(0);
  });

  it('--set fixes a parameter instead of drawing it', async () => {
    const r = await cvmsim(['fuzz', 'broken-invariant', '--seed', '1', '--runs', '5', '--set', 'mode=drain', '--set', 'items=6000'], withTargets);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/fuzz: configuration #0 failed \(broken-invariant, seed \d+\):/);
    expect(commandAfter(r.stdout, 'reproduce:')).toEqual(expect.arrayContaining(['items=6000', 'mode=drain']));
  });

  it('a run past its cap is stopped and reported, not failed (with events, or a loop the thread is terminated for); --strict fails it', async () => {
    const args = ['fuzz', 'slow-fixture', '--seed', '1', '--runs', '3', '--cap', '0.3'];
    const r = await cvmsim(args, withTargets);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/fuzz: root seed 1: 3 configurations in \d+:\d\d: 0 ok, 3 over the 0\.3 s cap, 0 failed/);
    expect(r.stdout).toContain('over the 0.3 s cap (not failures without --strict):');
    expect(r.stdout).toMatch(/#0: .*npx cvmsim run slow-fixture --set steps=\d+ --seed \d+/);
    expect(r.stdout).toMatch(/#1 \(no events: thread terminated\): .*npx cvmsim run slow-fixture --set spin=loop/);

    const strict = await cvmsim([...args, '--strict'], withTargets);
    expect(strict.code).toBe(1);
    expect(strict.stdout).toMatch(/fuzz: configuration #0 passed its 0\.3 s cap \(--strict\) \(slow-fixture, seed \d+\):\n {2}SimError: WallCapExceeded: the run passed its wall-time cap of 0\.3 s/);
    expect(commandAfter(strict.stdout, 'reproduce:').slice(0, 2)).toEqual(['run', 'slow-fixture']);
  });

  it('runs some configurations twice: module state leaking between runs is a divergence, reproduced with check-determinism', async () => {
    // mm-queue's leak_state=true shifts its arrivals after the first run in a process.
    const r = await cvmsim(['fuzz', 'mm-queue', '--seed', '3', '--runs', '20', '--determinism-every', '1', '--budget', '-3']);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stdout).toMatch(/fuzz: configuration #0 diverged \(mm-queue, seed \d+\):\n {2}ran twice: fingerprint [0-9a-f]{16} then [0-9a-f]{16}/);
    const command = commandAfter(r.stdout, 'reproduce:');
    expect(command.slice(0, 2)).toEqual(['check-determinism', 'mm-queue']);
    expect(command).toContain('leak_state=true');
    const again = await cvmsim(command);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('diverged at event #');
  });

  it('covers every registered experiment (configurations take turns), and exits 0 when nothing fails', async () => {
    const log = join(tempDir('fuzz-log'), 'runs.jsonl');
    const r = await cvmsim(['fuzz', '--seed', '7', '--runs', '4', '--budget', '-4', '--determinism-every', '0', '--log', log], { fixture: false });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const lines = readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => [l.index, l.experiment])).toEqual([[0, 'accept-boot'], [1, 'accept-throughput'], [2, 'accept-latency'], [3, 'multi-vm-boot']]);
    expect(lines[0]).toMatchObject({ outcome: expect.stringMatching(/^(ok|capped)$/), seed: expect.any(Number), events: expect.any(Number) });
    expect(r.stderr).toContain('fuzz: root seed 7 (repeat with --seed 7), accept-boot, accept-throughput, accept-latency, multi-vm-boot, pamt-memory, pamt-contention, convert, pamt-churn, hotplug-init;');
    for (const e of ['accept-boot', 'accept-throughput', 'accept-latency', 'multi-vm-boot']) expect(r.stdout).toMatch(new RegExp(`^${e}\\s+1\\s`, 'm'));
    expect(r.stdout).toMatch(/fuzz: root seed 7: 4 configurations in \d+:\d\d: \d ok, \d over the 5 s cap, 0 failed; \d+ events, /);
  });

  it('bad options are exit 2', async () => {
    const cases: [string[], RegExp][] = [
      [['fuzz', '--runs', '0'], /--runs: expected an integer >= 1, got '0'/],
      [['fuzz', '--cap', '-1'], /--cap: expected a number in \[0, 1e7\], got '-1'/],
      [['fuzz', '--budget', 'big'], /--budget: expected a number of doublings in \[-64, 64\], got 'big'/],
      [['fuzz', 'nope'], /unknown experiment 'nope'/],
      [['fuzz', '--set', 'fidelty=per-page'], /--set fidelty: unknown parameter 'fidelty' of accept-boot \(did you mean 'fidelity'\?\)/],
      [['fuzz', '--set', 'fidelity=every-page'], /--set fidelity: expected one of aggregate\|per-page, got 'every-page'/],
      [['fuzz', '--log', '/proc/x/runs.jsonl'], /--log \/proc\/x\/runs\.jsonl: cannot create directory \/proc\/x/],
    ];
    for (const [args, message] of cases) {
      const r = await cvmsim(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(message);
    }
  });
});
