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
}

export function cvmsim(args: string[], options: CliOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const env: Record<string, string | undefined> = { ...process.env, ...options.env };
    if (options.fixture !== false) env.CVMSIM_EXTRA_EXPERIMENTS = FIXTURE;
    else delete env.CVMSIM_EXTRA_EXPERIMENTS;
    const child = spawn(process.execPath, [BIN, ...args], { cwd: options.cwd ?? ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `cvmsim-${prefix}-`));
}
