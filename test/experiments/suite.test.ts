import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { experiments } from '../../experiments/registry.ts';
import { SUITE_SWEEP } from '../../experiments/suite.ts';
import { cvmsim, tempDir } from './cli_harness.ts';

describe('cvmsim suite (npm start)', () => {
  it('runs every registered experiment at its defaults with seed 1 plus the small sweep, with results, report and traces', async () => {
    expect(experiments.length, 'experiments/registry.ts registers no experiment').toBeGreaterThan(0);
    const dir = tempDir('suite');
    const out = join(dir, 'results', 'suite');
    // The product's suite: no fixture experiment, the registry alone; run from a fresh directory.
    const r = await cvmsim(['suite', '--out', out], { fixture: false, cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    for (const f of ['results.json', 'results.csv', 'summary.md', 'report.html']) {
      expect(existsSync(join(out, f)), f).toBe(true);
      expect(r.stdout).toContain(join(out, f));
    }
    const rs = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
    for (const e of experiments) {
      expect(r.stdout).toMatch(new RegExp(`^${e.name}\\s+1\\s+`, 'm'));
      const defaults = rs.runs.filter((x: { experiment: string; seed: number }) => x.experiment === e.name && x.seed === 1);
      expect(defaults.length, e.name).toBeGreaterThan(0);
      const trace = join(out, 'traces', `${e.name}.jaeger.json`);
      expect(r.stdout).toContain(trace);
      const jaeger = JSON.parse(readFileSync(trace, 'utf8'));
      expect(jaeger.data[0].spans.length, e.name).toBeGreaterThan(1);
      expect(jaeger.data[0].spans[0].startTime).toBeGreaterThan(0);
    }
    const sweepRuns = rs.runs.filter((x: { experiment: string }) => x.experiment === SUITE_SWEEP.experiment);
    const points = SUITE_SWEEP.grid.reduce((n, g) => n * g.values.length, 1);
    expect(sweepRuns.length).toBeGreaterThanOrEqual(points * SUITE_SWEEP.seeds);
    expect(rs.runs.every((x: { error?: string }) => x.error === undefined)).toBe(true);
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    expect(html).toContain(`id="${SUITE_SWEEP.experiment}.boot_to_userspace_s.vs.memory_gib"`);
    expect(html).toContain('href="traces/');
  });
});
