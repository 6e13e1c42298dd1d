import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cvmsim, ROOT, tempDir, type CliResult } from './cli_harness.ts';

/**
 * Output paths (issue 9, items 2-4): every output path is checked before the run, a path that
 * cannot be used is exit 2 and a write that fails is exit 1, each one line naming the path and
 * the cause; no command hangs, prints a stack trace or leaves a torn file; no command silently
 * replaces another's results.
 */
const SMALL = ['--set', 'customers=300'];
const FULL_DISK = join(ROOT, 'test', 'fixtures', 'full_disk.mjs');
/** Long enough for a slow machine, far shorter than a hang. */
const NO_HANG_MS = 30_000;
const ROOT_USER = process.getuid?.() === 0;

function expectOneLine(r: CliResult, code: number, text: string | RegExp): void {
  expect(r.signal, `killed: ${r.stderr}`).toBeNull();
  expect(r.code, r.stderr).toBe(code);
  const lines = r.stderr.trim().split('\n');
  expect(lines.at(-1)).toMatch(text);
  expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
}

/** Every file in dir is whole: no temporary file, and each JSON file parses. */
function expectNothingTorn(dir: string): void {
  if (!existsSync(dir)) return;
  for (const f of readdirSync(dir)) {
    expect(f, `temporary file left in ${dir}`).not.toMatch(/\.tmp/);
    if (f.endsWith('.json')) expect(() => JSON.parse(readFileSync(join(dir, f), 'utf8')), f).not.toThrow();
    if (f.endsWith('.jsonl')) for (const l of readFileSync(join(dir, f), 'utf8').split('\n').filter((x) => x !== '')) expect(() => JSON.parse(l)).not.toThrow();
  }
}

describe('output paths that cannot be created: exit 2 before the run, no hang', () => {
  const dir = tempDir('paths');
  const file = join(dir, 'file');
  writeFileSync(file, 'not a directory\n');

  const cases: [string, string[], RegExp][] = [
    ['run --out /proc/x', ['run', 'mm-queue', ...SMALL, '--out', '/proc/x'], /bad input: --out: cannot create directory \/proc\/x: no such file or directory \(ENOENT\)$/],
    ['run --trace /proc/x/b.jaeger.json', ['run', 'mm-queue', ...SMALL, '--trace', '/proc/x/b.jaeger.json'], /bad input: --trace \/proc\/x\/b\.jaeger\.json: cannot create directory \/proc\/x: no such file or directory \(ENOENT\)$/],
    ['sweep --out /proc/x', ['sweep', 'mm-queue', '--grid', 'servers=1,2', ...SMALL, '--out', '/proc/x'], /bad input: --out: cannot create directory \/proc\/x/],
    ['sweep --trace /proc/x/r.jaeger.json', ['sweep', 'mm-queue', '--grid', 'servers=1,2', ...SMALL, '--out', join(dir, 'sw'), '--trace', '/proc/x/r.jaeger.json'], /bad input: --trace \/proc\/x\/r\.jaeger\.json: cannot create directory \/proc\/x/],
    ['regress --update --baselines /proc/x', ['regress', '--update', '--baselines', '/proc/x', 'mm-queue'], /bad input: --baselines: cannot create directory \/proc\/x/],
    ['suite --out /proc/x', ['suite', '--out', '/proc/x'], /bad input: --out: cannot create directory \/proc\/x/],
    ['run --out <an existing file>', ['run', 'mm-queue', ...SMALL, '--out', file], new RegExp(`bad input: --out: cannot use ${file} as a directory: ${file} is a file$`)],
    ['run --out <file>/sub', ['run', 'mm-queue', ...SMALL, '--out', join(file, 'sub')], new RegExp(`bad input: --out: cannot use ${file}/sub as a directory: ${file} is a file$`)],
    ['run --trace <file>/x.jaeger.json', ['run', 'mm-queue', ...SMALL, '--trace', join(file, 'x.jaeger.json')], new RegExp(`bad input: --trace ${file}/x\\.jaeger\\.json: cannot use ${file} as a directory: ${file} is a file$`)],
    ['run --trace <a directory>.jaeger.json', ['run', 'mm-queue', ...SMALL, '--trace', join(dir, 'd.jaeger.json')], /cannot write the file: .*d\.jaeger\.json is a directory$/],
    ['regress --baselines <a file>', ['regress', '--baselines', file, 'mm-queue'], /bad input: --baselines: expected a directory of baseline files, got .*file, a file$/],
  ];
  mkdirSync(join(dir, 'd.jaeger.json'));

  it.each(cases)('%s', async (_name, args, message) => {
    const r = await cvmsim(args, { timeoutMs: NO_HANG_MS });
    expectOneLine(r, 2, message);
    expect(r.stdout).not.toContain('simulated'); // refused before the run, not after it
  });

  it('merge --out /proc/x', async () => {
    const shard = join(dir, 'whole');
    expect((await cvmsim(['sweep', 'mm-queue', '--grid', 'servers=1,2', ...SMALL, '--out', shard])).code).toBe(0);
    expectOneLine(await cvmsim(['merge', shard, '--out', '/proc/x'], { timeoutMs: NO_HANG_MS }), 2, /bad input: --out: cannot create directory \/proc\/x/);
  });
});

describe('read-only and full file systems', () => {
  const mounts: string[] = [];
  afterAll(() => {
    for (const m of mounts) execFileSync('umount', [m]);
  });

  /** A directory that cannot be written: a read-only tmpfs as root (root ignores permissions), else mode 0555. */
  function readOnlyDir(): { dir: string; cause: RegExp } {
    const dir = tempDir('ro');
    if (ROOT_USER) {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,ro', 'tmpfs', dir]);
      mounts.push(dir);
      return { dir, cause: /read-only file system \(EROFS\)$/ };
    }
    chmodSync(dir, 0o555);
    return { dir, cause: /permission denied \(EACCES\)$/ };
  }

  it('a read-only file system is named as such (not ENOENT), for a new and an existing directory', async () => {
    const { dir, cause } = readOnlyDir();
    const fresh = await cvmsim(['run', 'mm-queue', ...SMALL, '--out', join(dir, 'out')]);
    expectOneLine(fresh, 2, cause);
    expect(fresh.stderr).toContain(`--out: cannot create directory ${join(dir, 'out')}: `);
    const existing = await cvmsim(['run', 'mm-queue', ...SMALL, '--out', dir]);
    expectOneLine(existing, 2, cause);
    expect(existing.stderr).toContain(`--out: cannot create files in ${dir}: `);
    const trace = await cvmsim(['run', 'mm-queue', ...SMALL, '--trace', join(dir, 't.jaeger.json')]);
    expectOneLine(trace, 2, cause);
  });

  it('a full disk (fake): run --out exits 1 naming report.html and ENOSPC, and leaves no torn file', async () => {
    const dir = tempDir('full');
    const out = join(dir, 'out');
    // results.json and the small files fit; report.html does not: before the fix, writeSync's
    // short write left report.html cut at the limit and the exit code was 0.
    const r = await cvmsim(['run', 'mm-queue', ...SMALL, '--out', out], { node: ['--import', FULL_DISK], env: { FULL_DISK_DIR: dir, FULL_DISK_BYTES: '30000' } });
    expectOneLine(r, 1, new RegExp(`^cvmsim run: cannot write ${out}/report\\.html: no space left on device \\(ENOSPC\\)$`));
    expect(readdirSync(out).sort()).toEqual(['results.csv', 'results.json', 'summary.md']);
    expectNothingTorn(out);
  });

  it('a full disk (fake): a sweep stops with exit 1 when the journal fills, and the journal keeps whole lines only', async () => {
    const dir = tempDir('full-journal');
    const out = join(dir, 'out');
    const args = ['sweep', 'mm-queue', '--grid', 'servers=1,2,3', '--seeds', '3', ...SMALL, '--jobs', '1', '--out', out];
    const r = await cvmsim(args, { node: ['--import', FULL_DISK], env: { FULL_DISK_DIR: dir, FULL_DISK_BYTES: '60000' } });
    expectOneLine(r, 1, new RegExp(`^cvmsim sweep: cannot write ${out}/journal\\.jsonl: no space left on device \\(ENOSPC\\)$`));
    expectNothingTorn(out);
    const kept = readFileSync(join(out, 'journal.jsonl'), 'utf8');
    expect(kept === '' || kept.endsWith('\n')).toBe(true);
    // With room again, the same command resumes from the whole lines.
    const again = await cvmsim(args);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).not.toContain('torn');
  });

  it('a full disk (fake): a trace file that does not fit is exit 1 naming it, with no temporary file left', async () => {
    const dir = tempDir('full-trace');
    const trace = join(dir, 'run.jaeger.json');
    const r = await cvmsim(['run', 'mm-queue', ...SMALL, '--trace', trace], { node: ['--import', FULL_DISK], env: { FULL_DISK_DIR: dir, FULL_DISK_BYTES: '5000' } });
    expectOneLine(r, 1, new RegExp(`^cvmsim run: cannot write ${trace}: no space left on device \\(ENOSPC\\)$`));
    expect(readdirSync(dir)).toEqual([]);
  });

  it.skipIf(!ROOT_USER)('a full tmpfs (real, needs root): run --out and sweep exit 1 with ENOSPC, and nothing torn is left', async () => {
    const dir = tempDir('tmpfs');
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=48k', 'tmpfs', dir]);
    mounts.push(dir);
    const run = await cvmsim(['run', 'mm-queue', ...SMALL, '--out', join(dir, 'run')]);
    expectOneLine(run, 1, /: no space left on device \(ENOSPC\)$/);
    expectNothingTorn(join(dir, 'run'));
    const sweep = await cvmsim(['sweep', 'mm-queue', '--grid', 'servers=1,2', '--seeds', '3', ...SMALL, '--out', join(dir, 'sweep')]);
    expectOneLine(sweep, 1, /: no space left on device \(ENOSPC\)$/);
    expectNothingTorn(join(dir, 'sweep'));
  });
});

describe('damaged inputs', () => {
  it('report on a results.json with "experiments": null is exit 2 naming the field, no stack trace', async () => {
    const dir = tempDir('damaged');
    const out = join(dir, 'out');
    expect((await cvmsim(['run', 'mm-queue', ...SMALL, '--out', out])).code).toBe(0);
    const rs = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
    rs.experiments = null;
    writeFileSync(join(out, 'results.json'), JSON.stringify(rs));
    const r = await cvmsim(['report', out]);
    expectOneLine(r, 2, /results\.json is damaged: expected "experiments" to be an object of experiment schemas, got null$/);
    rs.experiments = {};
    writeFileSync(join(out, 'results.json'), JSON.stringify(rs));
    expectOneLine(await cvmsim(['report', out]), 2, /runs\[0\] is of experiment 'mm-queue', which "experiments" does not describe$/);
  });
});

describe('no silent overwrites', () => {
  const base = tempDir('overwrite');
  const sweepDir = join(base, 'sweep');
  const shards = [0, 1].map((i) => join(base, `shard${i}`));
  const SWEEP = ['sweep', 'mm-queue', '--grid', 'servers=1,2', '--seeds', '2', ...SMALL];

  it('run --out <a sweep directory> is refused and the sweep is left as it was', async () => {
    expect((await cvmsim([...SWEEP, '--out', sweepDir])).code).toBe(0);
    const before = readFileSync(join(sweepDir, 'results.json'), 'utf8');
    const r = await cvmsim(['run', 'mm-queue', ...SMALL, '--out', sweepDir]);
    expectOneLine(r, 2, new RegExp(`bad input: --out: ${sweepDir} holds a sweep \\(sweep\\.json, journal\\.jsonl\\); \`cvmsim run\` would replace its results\\.json: choose another directory`));
    expect(r.stdout).toBe('');
    expect(readFileSync(join(sweepDir, 'results.json'), 'utf8')).toBe(before);
  });

  it('run --out <the directory of an earlier run> replaces it, as before', async () => {
    const dir = join(base, 'run');
    expect((await cvmsim(['run', 'mm-queue', ...SMALL, '--out', dir])).code).toBe(0);
    const again = await cvmsim(['run', 'mm-queue', ...SMALL, '--seed', '2', '--out', dir]);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')).runs[0].seed).toBe(2);
    // ... but a sweep may not land there.
    expectOneLine(await cvmsim([...SWEEP, '--out', dir]), 2, /holds the results of mm-queue, seed 2 \(1 run\(s\)\); `cvmsim sweep` would replace its results\.json/);
  });

  it('merge A B --out A is refused (it would overwrite shard A); merging elsewhere, twice, works', async () => {
    for (const [i, d] of shards.entries()) expect((await cvmsim([...SWEEP, '--shard', `${i}/2`, '--out', d])).code).toBe(0);
    const before = readFileSync(join(shards[0]!, 'results.json'), 'utf8');
    const r = await cvmsim(['merge', shards[0]!, shards[1]!, '--out', shards[0]!]);
    expectOneLine(r, 2, new RegExp(`bad input: --out: ${shards[0]} is one of the shards being merged \\(shard 0/2\\); merging into it would overwrite that shard`));
    expect(readFileSync(join(shards[0]!, 'results.json'), 'utf8')).toBe(before);
    // Through another spelling of the same path.
    expectOneLine(await cvmsim(['merge', shards[0]!, shards[1]!, '--out', `${shards[1]}/.`]), 2, /is one of the shards being merged \(shard 1\/2\)/);
    // Into another sweep's directory: refused too.
    expectOneLine(await cvmsim(['merge', shards[0]!, shards[1]!, '--out', sweepDir]), 2, /holds a sweep/);
    const merged = join(base, 'merged');
    expect((await cvmsim(['merge', shards[0]!, shards[1]!, '--out', merged])).code).toBe(0);
    expect((await cvmsim(['merge', shards[1]!, shards[0]!, '--out', merged])).code).toBe(0);
  });
});
