import { availableParallelism } from 'node:os';
import { all, one, parseJobs } from '../args.ts';
import { STOP_SIGNALS } from '../batch.ts';
import { loadCatalog, type Catalog } from '../catalog.ts';
import { err, out, type Command } from '../command.ts';
import { fmt, textTable } from '../format.ts';
import { parseSeed } from '../plan.ts';
import { Interrupted } from '../pool.ts';
import { formatClock } from '../progress.ts';
import { formatSeconds } from '../runner.ts';
import { prepareOutputFiles } from '../output_paths.ts';
import { UsageError } from '../usage_error.ts';
import { FuzzLog } from '../fuzz/fuzz_log.ts';
import { isFailure, runCampaign, type CampaignOptions, type CampaignReport, type RunResult } from '../fuzz/campaign.ts';
import { DEFAULT_BUDGET, type Pinned } from '../fuzz/generate.ts';
import type { Experiment, Params } from '../experiment.ts';
import { paramSpec, parseParamValue, splitAssignment } from '../params.ts';
import { FuzzWorkerThread } from '../fuzz/fuzz_worker_thread.ts';
import { reproduceCommand } from '../fuzz/reproduce.ts';
import { failureSignature, shrink } from '../fuzz/shrink.ts';

/** Configurations run when neither --runs nor --time is given. */
const DEFAULT_RUNS = 100;
const DEFAULT_CAP_S = 5;
const DEFAULT_DETERMINISM_EVERY = 10;
/** Over-cap configurations listed at the end. */
const SHOWN_CAPPED = 5;

export const fuzz: Command = {
  name: 'fuzz',
  summary: 'Run random valid configurations of every experiment and stop at the first that fails. Each parameter is drawn within its allowed range, biased to its edges, with random seeds; a failure prints the command that reproduces it (exit 1).',
  positional: { name: '[experiment...]', min: 0, max: Infinity },
  options: {
    seed: { value: true, arg: 'N', help: 'root seed of the campaign (default: a random one, printed); the same seed draws the same configurations' },
    runs: { value: true, arg: 'N', help: `stop after N configurations (default ${DEFAULT_RUNS}, or no limit with --time)` },
    time: { value: true, arg: 'S', help: 'stop starting configurations after S seconds' },
    cap: { value: true, arg: 'S', help: `wall-time cap of one run in seconds (default ${DEFAULT_CAP_S}); a run past it is reported, and is a failure with --strict` },
    budget: { value: true, arg: 'D', help: `size budget: doublings above the defaults that one configuration's numbers may add up to (default ${DEFAULT_BUDGET}; negative: below the defaults)` },
    'determinism-every': { value: true, arg: 'N', help: `run every N-th configuration twice and compare fingerprints (default ${DEFAULT_DETERMINISM_EVERY}; 0: never)` },
    shrink: { value: false, help: 'on a failure, reduce the configuration to a smaller one that fails the same way' },
    strict: { value: false, help: 'a run past its cap is a failure' },
    set: { value: true, repeat: true, arg: 'k=v', help: 'fix a parameter instead of drawing it, in every experiment that has it' },
    jobs: { value: true, arg: 'J', help: 'worker threads (default 1)' },
    log: { value: true, arg: 'FILE', help: 'append one JSON line per configuration run (parameters, seed, outcome, wall time, events) to FILE' },
  },
  details: [
    'example: cvmsim fuzz --seed 1 --time 120 --shrink',
    'Invariants are always on: a failure is an assertion or a deadlock the engine reports, a result',
    'that breaks the experiment contract (undeclared or non-finite metrics), a worker thread that',
    'dies, or two runs of one configuration that differ. Sizes: one number per configuration may',
    'take its whole range (4096 GiB, 512 vCPUs); together the numbers may grow at most --budget',
    'doublings above their defaults. A run past --cap is stopped from inside the event loop (or',
    'its thread terminated when it produces no events) and listed with its command.',
  ].join('\n'),
  async run(args) {
    const catalog = await loadCatalog();
    const experiments = args.positional.length > 0 ? args.positional.map((n) => catalog.get(n, 'experiment')) : [...catalog.all];
    if (experiments.length === 0) throw new UsageError('experiment', 'no experiment is registered (experiments/registry.ts): nothing to fuzz');
    const seedText = one(args, 'seed');
    const timeText = one(args, 'time');
    const options: CampaignOptions = {
      experiments,
      rootSeed: seedText === undefined ? 1 + Math.floor(Math.random() * 2 ** 31) : parseSeed(seedText),
      runs: parseCount(one(args, 'runs'), '--runs', timeText === undefined ? DEFAULT_RUNS : Infinity),
      timeMs: timeText === undefined ? Infinity : parseSeconds(timeText, '--time') * 1000,
      capMs: parseSeconds(one(args, 'cap') ?? String(DEFAULT_CAP_S), '--cap') * 1000,
      budget: parseBudget(one(args, 'budget')),
      jobs: parseJobs(one(args, 'jobs'), 1, availableParallelism()),
      determinismEvery: parseCount(one(args, 'determinism-every'), '--determinism-every', DEFAULT_DETERMINISM_EVERY, 0),
      strict: args.switches.has('strict'),
      pinned: parsePinned(experiments, all(args, 'set')),
    };
    const logPath = one(args, 'log');
    if (logPath !== undefined) prepareOutputFiles([logPath], '--log');
    const log = logPath === undefined ? null : new FuzzLog(logPath);
    const limits = [Number.isFinite(options.runs) ? `${options.runs} configurations` : '', Number.isFinite(options.timeMs) ? `${options.timeMs / 1000} s` : ''].filter((s) => s !== '').join(' or ');
    err(`fuzz: root seed ${options.rootSeed} (repeat with --seed ${options.rootSeed}), ${experiments.map((e) => e.name).join(', ')}; cap ${options.capMs / 1000} s per run, size budget ${options.budget} doublings, ${options.jobs} worker thread(s); until ${limits} or a failure`);

    let stopSignal: (s: NodeJS.Signals) => void = () => {};
    const stopped = new Promise<NodeJS.Signals>((resolve) => (stopSignal = resolve));
    const onSignal = (s: NodeJS.Signals) => stopSignal(s);
    for (const s of STOP_SIGNALS) process.on(s, onSignal);
    const started = Date.now();
    let lastLine = started;
    let report: CampaignReport;
    try {
      report = await runCampaign(options, {
        stopped,
        onResult: (r, rep) => {
          log?.append(r);
          const now = Date.now();
          if (now - lastLine < 10_000) return;
          lastLine = now;
          err(`fuzz: ${countsLine(rep, options, now - started)}`);
        },
      });
    } finally {
      for (const s of STOP_SIGNALS) process.off(s, onSignal);
      log?.close();
    }

    out(summary(report, options, catalog));
    if (report.signal !== null) throw new Interrupted(report.signal);
    if (report.failure === null) return 0;
    await reportFailure(report.failure, options, catalog, args.switches.has('shrink'));
    return 1;
  },
};

/** `--set k=v` for every experiment that has k (checked against its spec); k unknown to all is bad input. */
function parsePinned(experiments: readonly Experiment[], sets: string[]): Pinned {
  const pinned = new Map<string, Params>(experiments.map((e) => [e.name, {}]));
  for (const s of sets) {
    const [k, raw] = splitAssignment('--set', s);
    const field = `--set ${k}`;
    const having = experiments.filter((e) => Object.hasOwn(e.params, k));
    if (having.length === 0) paramSpec(experiments[0]!, k, field); // throws, naming the closest parameter
    for (const e of having) {
      const p = pinned.get(e.name)!;
      if (Object.hasOwn(p, k)) throw new UsageError(field, `expected once, got it twice`);
      p[k] = parseParamValue(field, e.params[k]!, raw);
    }
  }
  return pinned;
}

function parseCount(text: string | undefined, field: string, fallback: number, min = 1): number {
  if (text === undefined) return fallback;
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(Number.isSafeInteger(n) && n >= min)) throw new UsageError(field, `expected an integer >= ${min}, got '${text}'`);
  return n;
}

function parseSeconds(text: string, field: string): number {
  const n = parseNumber(text, field, 0);
  if (n === 0) throw new UsageError(field, `expected a positive number of seconds, got '${text}'`);
  return n;
}

function parseBudget(text: string | undefined): number {
  if (text === undefined) return DEFAULT_BUDGET;
  const n = /^-?\d+(\.\d+)?$/.test(text) ? Number(text) : NaN;
  if (!(n >= -64 && n <= 64)) throw new UsageError('--budget', `expected a number of doublings in [-64, 64], got '${text}'`);
  return n;
}

function parseNumber(text: string, field: string, min: number): number {
  const n = /^\d+(\.\d+)?$/.test(text) ? Number(text) : NaN;
  if (!(n >= min && n <= 1e7)) throw new UsageError(field, `expected a number in [${min}, 1e7], got '${text}'`);
  return n;
}

function countsLine(rep: CampaignReport, options: CampaignOptions, elapsedMs: number): string {
  const by = (k: string) => rep.results.filter((r) => r.result.outcome === k).length;
  const failed = rep.results.filter((r) => isFailure(r, options.strict)).length;
  return `${rep.results.length} configurations in ${formatClock(elapsedMs)}: ${by('ok')} ok, ${by('capped')} over the ${options.capMs / 1000} s cap, ${failed} failed${rep.refused > 0 ? `, ${rep.refused} slot(s) refused by the experiments` : ''}`;
}

/** Per experiment: configurations, outcomes, events and time; then the capped ones with their commands. */
function summary(rep: CampaignReport, options: CampaignOptions, catalog: Catalog): string {
  const lines: string[] = [];
  const rows = options.experiments.map((e) => {
    const rs = rep.results.filter((r) => r.config.experiment === e.name);
    const count = (k: string) => String(rs.filter((r) => r.result.outcome === k).length);
    const slowest = rs.reduce((a, r) => Math.max(a, r.result.wallMs), 0);
    return [e.name, String(rs.length), count('ok'), count('capped'), String(rs.filter((r) => r.recheck).length), String(rs.filter((r) => isFailure(r, options.strict)).length), `${fmt(slowest / 1000)} s`];
  });
  lines.push(textTable(['experiment', 'configurations', 'ok', 'over cap', 'run twice', 'failed', 'slowest run'], rows));
  const events = rep.results.reduce((a, r) => a + r.result.events, 0);
  const virtualNs = rep.results.reduce((a, r) => a + r.result.virtualNs, 0);
  lines.push('', `fuzz: root seed ${options.rootSeed}: ${countsLine(rep, options, rep.wallMs)}; ${events} events, ${formatSeconds(virtualNs / 1e9)} simulated`);
  const capped = rep.results.filter((r) => r.result.outcome === 'capped');
  if (capped.length > 0) {
    lines.push(`over the ${options.capMs / 1000} s cap${options.strict ? '' : ' (not failures without --strict)'}:`);
    for (const r of capped.slice(0, SHOWN_CAPPED)) lines.push(`  #${r.config.index}${r.result.terminated === true ? ' (no events: thread terminated)' : ''}: ${reproduceCommand(catalog, r.config.experiment, r.config.params, r.config.seed)}`);
    if (capped.length > SHOWN_CAPPED) lines.push(`  ... and ${capped.length - SHOWN_CAPPED} more`);
  }
  return lines.join('\n');
}

async function reportFailure(f: RunResult, options: CampaignOptions, catalog: Catalog, wantShrink: boolean): Promise<void> {
  const { config, result } = f;
  const kind = result.outcome === 'diverged' ? 'check-determinism' : 'run';
  const what = result.outcome === 'capped' ? `passed its ${options.capMs / 1000} s cap (--strict)` : result.outcome;
  out(`\nfuzz: configuration #${config.index} ${what} (${config.experiment}, seed ${config.seed}):`);
  out((result.error ?? '').split('\n').slice(0, 12).map((l) => `  ${l}`).join('\n'));
  out(`reproduce:\n  ${reproduceCommand(catalog, config.experiment, config.params, config.seed, kind)}`);

  // Does it fail on its own, in a fresh thread? If not, an earlier run in the same thread left state behind.
  const fresh = new FuzzWorkerThread();
  const signature = failureSignature(result.error ?? '');
  const sameFailure = async (params: typeof config.params, seed: number) => {
    const o = await fresh.run({ experiment: config.experiment, params, seed, capMs: options.capMs, recheck: result.outcome === 'diverged' });
    return isFailure({ config, result: o, recheck: false }, options.strict) && o.outcome === result.outcome && failureSignature(o.error ?? '') === signature;
  };
  try {
    if (!(await sameFailure(config.params, config.seed))) {
      out(`note: it does not fail this way when run alone in a fresh worker thread: state left by the configurations run before it in the same thread is the likely cause`);
      return;
    }
    if (!wantShrink) return;
    err('fuzz: shrinking ...');
    const exp = catalog.get(config.experiment);
    const small = await shrink(exp, { params: config.params, seed: config.seed }, (c) => sameFailure(c.params, c.seed));
    out(`shrunk in ${small.runs} runs; reproduce:\n  ${reproduceCommand(catalog, config.experiment, small.params, small.seed, kind)}`);
  } finally {
    await fresh.close();
  }
}
