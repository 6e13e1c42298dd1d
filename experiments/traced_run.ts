import type { TraceOptions, TraceSummary } from '../traces/index.ts';
import type { Experiment, Params } from './experiment.ts';
import { errnoCode, OutputError } from './output_paths.ts';
import { runOnce, type RunHooks, type TimedRun } from './runner.ts';

/**
 * One run, traced when asked: the trace observer is attached to the Sim before the model is
 * built, and the session is finished (files written, OTLP flushed) with the error that ended the
 * run, if any. Tracing never changes the run's events, so its record and fingerprint are the
 * same with or without it.
 */
export interface TracedRun extends TimedRun {
  trace: TraceSummary | null;
}

/** Whether these options ask for any trace output. */
export function tracingOn(o: TraceOptions | null): o is TraceOptions {
  return o !== null && (o.files.length > 0 || o.otlp !== null);
}

export async function runTraced(exp: Experiment, params: Params, seed: number, trace: TraceOptions | null, hooks: RunHooks = {}): Promise<TracedRun> {
  if (!tracingOn(trace)) return { ...runOnce(exp, params, seed, hooks), trace: null };
  // OpenTelemetry is loaded only for traced runs.
  const { startTracing } = await import('../traces/index.ts');
  let session: ReturnType<typeof startTracing> | null = null;
  const timed = runOnce(exp, params, seed, {
    beforeRun(sim) {
      hooks.beforeRun?.(sim);
      session = startTracing(sim, { experiment: exp.name, params, seed }, trace);
    },
  });
  const s = session as ReturnType<typeof startTracing> | null;
  let summary: TraceSummary | null = null;
  try {
    summary = s === null ? null : await s.finish(timed.thrown);
  } catch (e) {
    throw asTraceFileError(e, trace.files);
  }
  return { ...timed, trace: summary };
}

/** A trace file that could not be written, named as the user gave it (not its temporary file). */
function asTraceFileError(e: unknown, files: readonly string[]): unknown {
  const path = (e as NodeJS.ErrnoException | null)?.path;
  if (errnoCode(e) === undefined || typeof path !== 'string') return e;
  const file = files.find((f) => path === f || path.startsWith(`${f}.`));
  return new OutputError(file ?? path, e);
}
