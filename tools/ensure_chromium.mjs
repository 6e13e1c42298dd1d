// `npm test` runs this first (the `pretest` script). The report test opens report.html in
// Debian's headless Chromium, which a fresh machine does not have: when it is missing, install
// it with apt-get if this process can (root, apt-get present), otherwise stop with the one
// command to run. The browser test is never skipped, so a missing browser must not be either.
//   node tools/ensure_chromium.mjs            check, and install if needed and possible
//   node tools/ensure_chromium.mjs --dry-run  say what it would do, change nothing
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Where Debian's package puts the browser; the report test looks here first. */
export const DEBIAN_CHROMIUM = '/usr/bin/chromium';

/** What to type when this script cannot install it itself. */
export const INSTALL_AS_ROOT = 'apt-get update && apt-get install -y chromium';
export const INSTALL_WITH_SUDO = 'sudo apt-get update && sudo apt-get install -y chromium';

/** An executable named `name` on PATH, or null. */
export function onPath(name, path = process.env.PATH ?? '') {
  for (const dir of path.split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

/** The Chromium the report test will launch: /usr/bin/chromium, else `chromium` on PATH, else null. */
export function findChromium(path = process.env.PATH ?? '') {
  return existsSync(DEBIAN_CHROMIUM) ? DEBIAN_CHROMIUM : onPath('chromium', path);
}

/** The facts the decision rests on, read from this machine. */
export function probe() {
  return {
    chromium: findChromium(),
    root: typeof process.getuid === 'function' && process.getuid() === 0,
    aptGet: onPath('apt-get') !== null,
  };
}

/**
 * What to do: nothing (the browser is there), install (root with apt-get), or fail with the one
 * command the user has to run.
 */
export function decide({ chromium, root, aptGet }) {
  if (chromium !== null) return { action: 'none', message: `chromium: ${chromium}` };
  if (aptGet && root) return { action: 'install', message: `chromium is missing: running ${INSTALL_AS_ROOT}` };
  const why = 'chromium is missing; the report test (test/experiments/report_browser.test.ts) opens report.html in it.';
  if (aptGet) return { action: 'fail', message: `${why}\nInstall it, then run npm test again:\n  ${INSTALL_WITH_SUDO}` };
  return {
    action: 'fail',
    message: `${why}\nThis machine has no apt-get: install Chromium so that \`chromium\` is on PATH (on Debian or Ubuntu: ${INSTALL_WITH_SUDO}), then run npm test again.`,
  };
}

/**
 * Carries out the decision; returns the exit code. `exec(command, args, env)` runs one command
 * and returns its exit status (injected so that the test can check the commands without running
 * apt-get).
 */
export function ensureChromium(facts, { exec, log, recheck, dryRun = false }) {
  const d = decide(facts);
  if (d.action === 'none') return 0;
  if (d.action === 'fail') {
    log(d.message);
    return 1;
  }
  log(dryRun ? `would run: ${INSTALL_AS_ROOT}` : d.message);
  if (dryRun) return 0;
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [['update'], ['install', '-y', 'chromium']]) {
    const status = exec('apt-get', args, env);
    if (status !== 0) {
      log(`apt-get ${args.join(' ')} failed (exit ${status}); install chromium by hand, then run npm test again:\n  ${INSTALL_AS_ROOT}`);
      return 1;
    }
  }
  const found = recheck();
  if (found === null) {
    log(`apt-get installed chromium but neither ${DEBIAN_CHROMIUM} nor \`chromium\` on PATH exists`);
    return 1;
  }
  log(`chromium: installed ${found}`);
  return 0;
}

function execInherit(command, args, env) {
  const r = spawnSync(command, args, { env, stdio: 'inherit' });
  return r.status ?? 1;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.exitCode = ensureChromium(probe(), {
    exec: execInherit,
    log: (text) => process.stderr.write(`${text}\n`),
    recheck: () => findChromium(),
    dryRun: process.argv.includes('--dry-run'),
  });
}
