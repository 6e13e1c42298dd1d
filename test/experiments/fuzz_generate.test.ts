import { describe, expect, it } from 'vitest';
import { experiments } from '../../experiments/registry.ts';
import { checkParams } from '../../experiments/params.ts';
import { hintedCost } from '../../experiments/fuzz/cost_hints.ts';
import { DEFAULT_BUDGET, drawConfig, numberCost, type FuzzConfig, type NumberSpec } from '../../experiments/fuzz/generate.ts';
import { between, failureSignature } from '../../experiments/fuzz/shrink.ts';

/** The fuzzer's configurations, drawn from the registry's parameter specs alone. */
const DRAWS = 12000; // nine experiments; a 4 TiB accept-boot is ~0.2% of its draws (the lead at its max, host_cpus accepted)

function draws(seed: number, budget = DEFAULT_BUDGET): FuzzConfig[] {
  const out: FuzzConfig[] = [];
  for (let i = 0; i < DRAWS; i++) {
    const c = drawConfig(experiments, seed, i, budget);
    if (c !== null) out.push(c);
  }
  return out;
}

describe('fuzz configurations', () => {
  const all = draws(1);

  it('are valid: every value within its spec, every combination accepted, seeds positive', () => {
    expect(all.length).toBeGreaterThan(DRAWS * 0.95);
    for (const c of all) {
      const exp = experiments.find((e) => e.name === c.experiment)!;
      expect(checkParams(exp, c.params, `#${c.index}`)).toEqual(c.params);
      expect(exp.check?.(c.params)).toBeUndefined();
      expect(Number.isSafeInteger(c.seed) && c.seed >= 1).toBe(true);
    }
  });

  it('cover every experiment and every enum value, and reach the edges: 1 and 512 vCPUs, 1 GiB and 4 TiB', () => {
    for (const exp of experiments) {
      const mine = all.filter((c) => c.experiment === exp.name);
      // Experiments take turns; a slot whose draws the experiment's own check keeps refusing is given up.
      expect(mine.length).toBeGreaterThan((DRAWS / experiments.length) * 0.9);
      for (const [k, spec] of Object.entries(exp.params)) {
        const seen = new Set(mine.map((c) => c.params[k]));
        if (spec.type === 'enum') for (const v of spec.values) expect(seen, `${exp.name} ${k}=${v}`).toContain(v);
        if (spec.type === 'boolean') expect(seen.size, `${exp.name} ${k}`).toBe(2);
        if (spec.type === 'number') expect(seen, `${exp.name} ${k} min`).toContain(spec.min);
      }
    }
    // The edges of a guest's size, in the experiments that boot guests (accept-boot alone draws
    // 4 TiB too rarely since it also takes vms and kernel_config: a draw is a few in a thousand).
    const boot = all.filter((c) => ['accept-boot', 'multi-vm-boot', 'accept-latency'].includes(c.experiment));
    for (const [k, v] of [['vcpus', 512], ['vcpus', 1], ['memory_gib', 4096], ['memory_gib', 1]] as const) {
      expect(boot.some((c) => c.params[k] === v), `${k}=${v}`).toBe(true);
    }
  });

  it('cap the product of sizes: besides the largest, the numbers grow at most `budget` doublings; costly values shrink the rest', () => {
    for (const c of all) {
      const exp = experiments.find((e) => e.name === c.experiment)!;
      const grown = Object.entries(exp.params)
        .filter(([, s]) => s.type === 'number')
        .map(([k, s]) => numberCost(k, s as NumberSpec, c.params[k] as number))
        .sort((a, b) => b - a);
      const hints = Object.keys(c.params).reduce((a, k) => a + hintedCost(k, c.params[k]), 0);
      const total = grown.reduce((a, d) => a + d, 0);
      if (hints > 0) expect(total, `#${c.index}`).toBeLessThanOrEqual(Math.max(0, DEFAULT_BUDGET - hints) + 1e-9);
      else expect(total - grown[0]!, `#${c.index}`).toBeLessThanOrEqual(DEFAULT_BUDGET + 1e-9);
      expect(c.params.vcpus === 512 && c.params.memory_gib === 4096, `#${c.index}`).toBe(false);
      // fidelity=per-page costs 11 doublings: memory at an eighth of its default (at least 1 GiB).
      const memory = exp.params.memory_gib as NumberSpec;
      if (c.params.fidelity === 'per-page') expect(c.params.memory_gib as number).toBeLessThanOrEqual(Math.max(1, memory.default / 8));
    }
  });

  it('depend on (root seed, index) alone; a negative budget keeps them small', () => {
    expect(drawConfig(experiments, 1, 123)).toEqual(all.find((c) => c.index === 123) ?? null);
    expect(drawConfig(experiments, 2, 123)).not.toEqual(drawConfig(experiments, 1, 123));
    const small = draws(1, -3).filter((c) => c.experiment === 'accept-boot');
    // Only the lead may grow past an eighth of its default.
    for (const c of small) expect([c.params.memory_gib as number, c.params.vcpus as number].filter((v) => v > 1).length).toBeLessThanOrEqual(1);
  });
});

describe('shrink helpers', () => {
  const int: NumberSpec = { type: 'number', default: 4, unit: '', description: '', min: 1, max: 4096, integer: true };
  const real: NumberSpec = { type: 'number', default: 1, unit: '', description: '', min: 0.001, max: 1000 };

  it('between: geometric across decades, integers until adjacent, other numbers to 3 digits', () => {
    expect(between(int, 4, 4096)).toBe(128);
    expect(between(int, 4, 6)).toBe(5);
    expect(between(int, 5, 6)).toBeUndefined();
    expect(between(real, 1, 3)).toBe(2);
    expect(between(real, 1, 1.001)).toBeUndefined();
  });

  it('failureSignature: the first line without numbers or the seed tag', () => {
    expect(failureSignature('SimError: deadlock: 12 process(es) blocked [seed=4 t=99ns]\n  customer#3 ...'))
      .toBe(failureSignature('SimError: deadlock: 7 process(es) blocked [seed=1 t=5ns]'));
    expect(failureSignature('SimAssertionError: a')).not.toBe(failureSignature('SimAssertionError: b'));
  });
});
