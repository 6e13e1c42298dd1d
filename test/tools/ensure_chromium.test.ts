import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decide, ensureChromium, findChromium, INSTALL_AS_ROOT, INSTALL_WITH_SUDO, onPath, probe, type Facts } from '../../tools/ensure_chromium.mjs';
import { ROOT, tempDir } from '../experiments/cli_harness.ts';

/**
 * tools/ensure_chromium.mjs, the `pretest` step of `npm test`: its decisions on every kind of
 * machine, and the commands it would run, checked with a fake exec (nothing is installed or
 * removed here).
 */
function carryOut(facts: Facts, statuses: number[] = [0, 0], after: string | null = '/usr/bin/chromium') {
  const calls: { command: string; args: string[]; frontend: string | undefined }[] = [];
  const lines: string[] = [];
  const code = ensureChromium(facts, {
    exec: (command, args, env) => {
      calls.push({ command, args, frontend: env.DEBIAN_FRONTEND });
      return statuses[calls.length - 1] ?? 0;
    },
    log: (t) => lines.push(t),
    recheck: () => after,
  });
  return { code, calls, log: lines.join('\n') };
}

describe('ensure_chromium (pretest)', () => {
  it('does nothing when chromium is there', () => {
    expect(decide({ chromium: '/usr/bin/chromium', root: false, aptGet: false }).action).toBe('none');
    const r = carryOut({ chromium: '/usr/bin/chromium', root: true, aptGet: true });
    expect(r).toEqual({ code: 0, calls: [], log: '' });
  });

  it('as root with apt-get: apt-get update, then install -y chromium, non-interactive', () => {
    const r = carryOut({ chromium: null, root: true, aptGet: true });
    expect(r.code).toBe(0);
    expect(r.calls).toEqual([
      { command: 'apt-get', args: ['update'], frontend: 'noninteractive' },
      { command: 'apt-get', args: ['install', '-y', 'chromium'], frontend: 'noninteractive' },
    ]);
    expect(r.log).toContain('chromium: installed /usr/bin/chromium');
  });

  it('fails with the command when apt-get fails, or installs nothing usable', () => {
    const failed = carryOut({ chromium: null, root: true, aptGet: true }, [0, 100]);
    expect(failed.code).toBe(1);
    expect(failed.log).toContain(`apt-get install -y chromium failed (exit 100); install chromium by hand, then run npm test again:\n  ${INSTALL_AS_ROOT}`);
    const offline = carryOut({ chromium: null, root: true, aptGet: true }, [100]);
    expect(offline.code).toBe(1);
    expect(offline.calls).toHaveLength(1);
    const nothing = carryOut({ chromium: null, root: true, aptGet: true }, [0, 0], null);
    expect(nothing.code).toBe(1);
    expect(nothing.log).toContain('neither /usr/bin/chromium nor `chromium` on PATH exists');
  });

  it('not root: fails with the one sudo command, runs nothing', () => {
    const r = carryOut({ chromium: null, root: false, aptGet: true });
    expect(r.code).toBe(1);
    expect(r.calls).toEqual([]);
    expect(r.log.split('\n').at(-1)).toBe(`  ${INSTALL_WITH_SUDO}`);
  });

  it('no apt-get: fails and says what to install, runs nothing', () => {
    const r = carryOut({ chromium: null, root: true, aptGet: false });
    expect(r.code).toBe(1);
    expect(r.calls).toEqual([]);
    expect(r.log).toContain('This machine has no apt-get: install Chromium so that `chromium` is on PATH');
  });

  it('finds chromium on PATH as well as at /usr/bin/chromium', () => {
    const dir = tempDir('path');
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    expect(onPath('chromium', bin)).toBeNull();
    writeFileSync(join(bin, 'chromium'), '#!/bin/sh\n');
    chmodSync(join(bin, 'chromium'), 0o755);
    expect(onPath('chromium', `/nonexistent:${bin}`)).toBe(join(bin, 'chromium'));
    expect(findChromium(bin)).not.toBeNull();
  });

  it('is the pretest script of npm test; --dry-run on this machine says what it would do and changes nothing', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    expect(pkg.scripts.pretest).toBe('node tools/ensure_chromium.mjs');
    const r = spawnSync(process.execPath, [join(ROOT, 'tools', 'ensure_chromium.mjs'), '--dry-run'], { encoding: 'utf8' });
    const d = decide(probe());
    expect(r.status, r.stderr).toBe(d.action === 'fail' ? 1 : 0);
    if (d.action === 'install') expect(r.stderr).toBe(`would run: ${INSTALL_AS_ROOT}\n`);
    if (d.action === 'none') expect(r.stderr).toBe('');
  });
});
