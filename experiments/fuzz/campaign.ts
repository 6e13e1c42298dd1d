import { performance } from 'node:perf_hooks';
import type { Experiment } from '../experiment.ts';
import { drawConfig, type FuzzConfig, type Pinned } from './generate.ts';
import type { FuzzOutcome } from './fuzz_task.ts';
import { FuzzWorkerThread } from './fuzz_worker_thread.ts';

/**
 * A fuzz campaign: configurations 0, 1, 2, ... of one root seed, each run on a worker thread
 * under its wall-time cap, until the run count or the time budget is reached, a configuration
 * fails, or a signal stops it. Configuration i depends on (root seed, i) alone, so a campaign is
 * repeatable whatever --jobs and however far it got.
 */
export interface CampaignOptions {
  experiments: readonly Experiment[];
  rootSeed: number;
  /** Stop after this many configurations (Infinity: no limit). */
  runs: number;
  /** Stop starting new configurations after this much wall time (Infinity: no limit). */
  timeMs: number;
  capMs: number;
  budget: number;
  jobs: number;
  /** Every n-th configuration is run twice and the fingerprints compared (0: never). */
  determinismEvery: number;
  /** A capped run ends the campaign as a failure. */
  strict: boolean;
  /** Parameters fixed by the user (fuzz --set), by experiment. */
  pinned?: Pinned;
}

export interface RunResult {
  config: FuzzConfig;
  result: FuzzOutcome;
  /** This configuration was run twice (a determinism check). */
  recheck: boolean;
}

export interface CampaignReport {
  results: RunResult[];
  /** Configuration slots given up because the experiment refused every draw. */
  refused: number;
  /** The first failure (or, with strict, the first capped run), if any. */
  failure: RunResult | null;
  wallMs: number;
  /** The signal that stopped the campaign, if one did. */
  signal: NodeJS.Signals | null;
}

export interface CampaignIo {
  /** Called after each finished configuration, in completion order. */
  onResult?(r: RunResult, report: CampaignReport): void;
  /** Resolves with a signal when the user stops the campaign (Ctrl-C). */
  stopped?: Promise<NodeJS.Signals>;
}

export function isFailure(r: RunResult, strict: boolean): boolean {
  const o = r.result.outcome;
  return o === 'failed' || o === 'diverged' || o === 'crashed' || (strict && o === 'capped');
}

export async function runCampaign(options: CampaignOptions, io: CampaignIo = {}): Promise<CampaignReport> {
  const started = performance.now();
  const report: CampaignReport = { results: [], refused: 0, failure: null, wallMs: 0, signal: null };
  const threads = Array.from({ length: Math.max(1, options.jobs) }, () => new FuzzWorkerThread());
  let next = 0;
  let stop = false;
  void io.stopped?.then((s) => {
    report.signal = s;
    stop = true;
    // Abandon the runs in flight: their threads are terminated and their results dropped.
    for (const t of threads) void t.close();
  });

  /** The next configuration to run, or null when the campaign is over. */
  const take = (): FuzzConfig | null => {
    for (;;) {
      if (stop || next >= options.runs || performance.now() - started >= options.timeMs) return null;
      const config = drawConfig(options.experiments, options.rootSeed, next++, options.budget, options.pinned);
      if (config !== null) return config;
      report.refused++;
    }
  };

  const lane = async (thread: FuzzWorkerThread) => {
    for (let config = take(); config !== null; config = take()) {
      const recheck = options.determinismEvery > 0 && config.index % options.determinismEvery === options.determinismEvery - 1;
      const result = await thread.run({ experiment: config.experiment, params: config.params, seed: config.seed, capMs: options.capMs, recheck });
      if (report.signal !== null) return;
      const r: RunResult = { config, result, recheck };
      report.results.push(r);
      if (isFailure(r, options.strict) && (report.failure === null || r.config.index < report.failure.config.index)) {
        report.failure = r;
        stop = true;
      }
      io.onResult?.(r, report);
    }
  };
  try {
    await Promise.all(threads.map((t) => lane(t)));
  } finally {
    await Promise.all(threads.map((t) => t.close()));
  }
  report.results.sort((a, b) => a.config.index - b.config.index);
  report.wallMs = performance.now() - started;
  return report;
}
