import { performance } from 'node:perf_hooks';
import type { Sim } from '../sim/index.ts';

/**
 * Watches one run by the wall clock from inside the engine's event loop: a progress callback
 * every few seconds of a long run (`cvmsim run` prints a line), and a wall-time cap that ends the
 * run (the fuzzer's). Wall time stays out of sim/ (the engine runs in virtual time only), so the
 * watch wraps this one Sim's fingerprint.mix, which the loop calls once per executed event, and
 * reads the clock every CHECK_EVERY events. The fingerprint itself is unchanged.
 */
const CHECK_EVERY = 16_384;

export interface RunProgress {
  virtualNs: number;
  events: number;
  wallMs: number;
}

export interface WatchOptions {
  /** End the run with WallCapExceeded once it has used this much wall time. */
  capMs?: number;
  /** Called every `progressEveryMs` of wall time (first after that long), from inside the run. */
  progress?: (p: RunProgress) => void;
  progressEveryMs?: number;
}

/** Thrown from inside the event loop when a run passes its wall-time cap. */
export class WallCapExceeded extends Error {
  override name = 'WallCapExceeded';
}

export interface RunWatch {
  /** The cap ended the run (the error the run reports is then the engine's wrapping of WallCapExceeded). */
  readonly capped: boolean;
}

export function watchRun(sim: Sim, options: WatchOptions): RunWatch {
  const started = performance.now();
  const state = { capped: false };
  const fp = sim.fingerprint;
  const mix = fp.mix;
  const every = options.progressEveryMs ?? Infinity;
  let nextProgress = every;
  let countdown = CHECK_EVERY;
  const check = () => {
    const wallMs = performance.now() - started;
    if (options.capMs !== undefined && wallMs > options.capMs) {
      state.capped = true;
      throw new WallCapExceeded(`the run passed its wall-time cap of ${options.capMs / 1000} s (${fp.count} events, ${sim.now} ns simulated)`);
    }
    if (options.progress !== undefined && wallMs >= nextProgress) {
      nextProgress = wallMs + every;
      options.progress({ virtualNs: sim.now, events: fp.count, wallMs });
    }
  };
  fp.mix = function watchedMix(time: number, seq: number, kind: number): void {
    mix.call(this, time, seq, kind);
    if (--countdown === 0) {
      countdown = CHECK_EVERY;
      check();
    }
  };
  return state;
}
