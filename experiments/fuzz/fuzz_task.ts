import type { Params } from '../experiment.ts';

/** One configuration for a fuzzer worker (fuzz_worker.ts): what to run, its cap, whether to run it twice. */
export interface FuzzTask {
  id: number;
  experiment: string;
  params: Params;
  seed: number;
  capMs: number;
  /** Run it a second time and compare fingerprints (a determinism check). */
  recheck: boolean;
}

/**
 * How a configuration ended: ok; failed (the run threw: an assertion, a deadlock, a broken
 * result contract); diverged (two runs, two event sequences); capped (it passed its wall-time
 * cap, which is not a failure unless --strict); crashed (the worker thread died).
 */
export type FuzzOutcomeKind = 'ok' | 'failed' | 'diverged' | 'capped' | 'crashed';

export interface FuzzOutcome {
  outcome: FuzzOutcomeKind;
  error?: string;
  wallMs: number;
  events: number;
  virtualNs: number;
  fingerprint: string;
  /** Capped by the parent's backstop (no event for a long time: the worker was terminated). */
  terminated?: boolean;
}

export type FuzzReply = { id: number; started: true } | ({ id: number; started?: undefined } & FuzzOutcome);
