import { realpathSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { one } from '../args.ts';
import { out, type Command } from '../command.ts';
import { prepareOutputDir } from '../output_paths.ts';
import { refuseOtherResults, writeOutputs } from '../outputs.ts';
import { planRuns } from '../plan.ts';
import { buildResultSet, readResultSet, type ResultSet } from '../results.ts';
import { runKey, type RunRecord } from '../run_record.ts';
import { UsageError } from '../usage_error.ts';
import { printSummary, reportFailures } from './sweep.ts';

export const merge: Command = {
  name: 'merge',
  summary: 'Combine the shards of one sweep into one result set. Each DIR is written by `cvmsim sweep --shard i/n`; the result is as if the sweep had run in one piece.',
  positional: { name: 'DIR...', min: 1, max: Infinity },
  options: {
    out: { value: true, arg: 'DIR', help: 'output directory (default results/sweep-<experiment>)' },
  },
  details: 'Every shard 0..n-1 of the same sweep (same experiment, parameters, grid and seeds) must be given once.',
  async run(args) {
    const sets = args.positional.map((d) => ({ dir: d, rs: readResultSet(d, d) }));
    const merged = mergeShards(sets);
    const dir = one(args, 'out') ?? join('results', `sweep-${merged.sweep!.experiment}`);
    const shard = sets.find((s) => sameDirectory(s.dir, dir));
    if (shard !== undefined) {
      throw new UsageError('--out', `${dir} is one of the shards being merged (shard ${shard.rs.shard?.index ?? 0}/${shard.rs.shard?.count ?? 1}); merging into it would overwrite that shard: choose another --out`);
    }
    prepareOutputDir(dir, '--out');
    // An earlier merge of this same sweep may be replaced; anything else may not.
    const sweepText = JSON.stringify(merged.sweep);
    refuseOtherResults(dir, '--out', 'cvmsim merge', (c) => !c.sweep && c.results !== null && c.results !== 'unreadable' && c.results.shard === null && JSON.stringify(c.results.sweep) === sweepText);
    const paths = writeOutputs(dir, merged);
    printSummary(merged);
    out(`\nmerged ${sets.length} shard(s): ${merged.runs.length} runs\nwrote ${paths.results}\n      ${paths.csv}\n      ${paths.summary}\n      ${paths.report}`);
    return reportFailures(merged);
  },
};

/** Checks that the inputs are all the shards of one sweep and puts their runs back in plan order. */
export function mergeShards(sets: { dir: string; rs: ResultSet }[]): ResultSet {
  const first = sets[0]!;
  if (first.rs.sweep === null) throw new UsageError(first.dir, 'expected the output of `cvmsim sweep`, got a suite result set');
  const sweepText = JSON.stringify(first.rs.sweep);
  for (const s of sets) {
    if (s.rs.sweep === null || JSON.stringify(s.rs.sweep) !== sweepText) {
      throw new UsageError(s.dir, `expected a shard of the same sweep as ${first.dir}, got a different sweep (experiment, parameters, grid or seeds differ)`);
    }
  }
  const count = first.rs.shard?.count ?? 1;
  const seen = new Map<number, string>();
  for (const s of sets) {
    const shard = s.rs.shard ?? { index: 0, count: 1 };
    if (shard.count !== count) throw new UsageError(s.dir, `expected a shard of ${count} (like ${first.dir}), got shard ${shard.index}/${shard.count}`);
    const dup = seen.get(shard.index);
    if (dup !== undefined) throw new UsageError(s.dir, `expected each shard once, got shard ${shard.index}/${count} twice (also ${dup})`);
    seen.set(shard.index, s.dir);
  }
  const missing = Array.from({ length: count }, (_, i) => i).filter((i) => !seen.has(i));
  if (missing.length > 0) throw new UsageError('DIR...', `expected all ${count} shards, missing shard(s) ${missing.map((i) => `${i}/${count}`).join(', ')}`);

  const byKey = new Map<string, RunRecord>();
  for (const s of sets) for (const r of s.rs.runs) byKey.set(runKey(r), r);
  const plan = planRuns(first.rs.sweep);
  const runs = plan.map((p) => {
    const r = byKey.get(runKey({ experiment: first.rs.sweep!.experiment, params: p.params, seed: p.seed }));
    if (r === undefined) throw new UsageError('DIR...', `expected run ${p.index} (seed ${p.seed}, ${JSON.stringify(p.params)}) in one of the shards, found it in none`);
    return r;
  });
  return buildResultSet(runs, first.rs.experiments, first.rs.sweep, null);
}

/** Whether two paths name the same directory (through symbolic links too). */
function sameDirectory(a: string, b: string): boolean {
  const real = (p: string) => {
    try {
      return realpathSync(p);
    } catch {
      return resolve(p);
    }
  };
  return real(a) === real(b);
}
