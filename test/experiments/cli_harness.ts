import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Runs the real `cvmsim` bin (bin/cvmsim.js, which loads the TypeScript CLI through tsx) as a child process. */
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const BIN = join(ROOT, 'bin', 'cvmsim.js');
export const FIXTURE = join(ROOT, 'test', 'fixtures', 'queue_experiment.ts');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  cwd?: string;
  env?: Record<string, string | undefined>;
  /** Registers the test fixture experiment (mm-queue) through CVMSIM_EXTRA_EXPERIMENTS. */
  fixture?: boolean;
  /** Extra experiment modules registered after the fixture (CVMSIM_EXTRA_EXPERIMENTS). */
  extra?: string[];
  /** Flags for node itself, before the bin (e.g. `--import` of a test fault). */
  node?: string[];
  /** Kill the child after this many ms (the result then has signal SIGKILL). */
  timeoutMs?: number;
}

export function cvmsim(args: string[], options: CliOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const env: Record<string, string | undefined> = { ...process.env, ...options.env };
    const modules = [...(options.fixture !== false ? [FIXTURE] : []), ...(options.extra ?? [])];
    if (modules.length > 0) env.CVMSIM_EXTRA_EXPERIMENTS = modules.join(',');
    else delete env.CVMSIM_EXTRA_EXPERIMENTS;
    const child = spawn(process.execPath, [...(options.node ?? []), BIN, ...args], { cwd: options.cwd ?? ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const timer = options.timeoutMs === undefined ? null : setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (timer !== null) clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `cvmsim-${prefix}-`));
}
