import type { Attributes } from '@opentelemetry/api';
import type { Sim } from '../sim/index.ts';
import { stableJson, toParamAttribute } from './attributes.ts';
import { VirtualClock } from './hrtime.ts';
import { SeededIdGenerator } from './ids.ts';
import { parseEpoch, validateTraceOptions, type TraceOptions } from './options.ts';
import { exportOtlp, resolveOtlpEndpoint } from './otlp_export.ts';
import { SpanFactory } from './span_factory.ts';
import { traceFileBytes, writeFileAtomic } from './trace_files.ts';
import { TraceObserver } from './trace_observer.ts';
import { CVMSIM_VERSION } from './version.ts';

/** What the CLI needs to name the trace of a run. */
export interface TraceRun {
  experiment: string;
  params: Record<string, unknown>;
  seed: number;
}

export interface TraceSummary {
  traceId: string;
  /** Where the trace opens in a Jaeger UI that received it over OTLP. */
  jaegerUrl: string;
  /** Spans in the trace (root included). */
  spans: number;
  /** Spans cut by --trace-max-spans. */
  droppedSpans: number;
  /** Files written, in the order given. */
  files: string[];
  otlp: null | { endpoint: string; ok: boolean; error?: string };
  /** 3 when --otlp-required and the export failed; otherwise 0. */
  exitCode: 0 | 3;
  /** One line each, for the CLI to print (a failed export, cut spans, cut events). */
  warnings: string[];
}

export interface TraceSession {
  readonly traceId: string;
  /**
   * After sim.run(): ends open spans at sim.now, writes the files (temp file + rename), exports
   * over OTLP (flushed before it returns). Pass the error that ended the run, if one did: it
   * becomes an `exception` event with status ERROR on the failing process's span and the root.
   */
  finish(error?: unknown): Promise<TraceSummary>;
}

/** The Jaeger query UI's port; its trace page is /trace/<id>. */
const JAEGER_UI_PORT = 16686;

/**
 * Attaches a trace observer to sim (call before the model runs). Throws TraceUsageError on bad
 * options. The trace's ids derive from the run (seed, experiment, parameters) and the epoch.
 */
export function startTracing(sim: Sim, run: TraceRun, options: TraceOptions): TraceSession {
  validateTraceOptions(options);
  if (sim.observer !== null) throw new Error('startTracing: the Sim already has an observer attached');
  const epoch = parseEpoch(options.epoch);
  const clock = new VirtualClock(epoch);
  const params = stableJson(run.params);
  const ids = new SeededIdGenerator(`${run.experiment}\u0000${params}\u0000${epoch[0]}.${epoch[1]}`, run.seed);
  const factory = new SpanFactory(ids, { 'service.version': CVMSIM_VERSION, 'cvmsim.experiment': run.experiment });
  const observer = new TraceObserver(sim, factory, clock, {
    level: options.level,
    maxSpans: options.maxSpans,
    rootName: run.experiment,
    rootAttributes: rootAttributes(run, options, clock),
  });
  sim.observer = observer;
  let finished = false;
  return {
    traceId: observer.traceId,
    async finish(error?: unknown): Promise<TraceSummary> {
      if (finished) throw new Error('TraceSession.finish called twice');
      finished = true;
      if (sim.observer === observer) sim.observer = null;
      if (error !== undefined) observer.recordError(error);
      observer.endAll({
        'cvmsim.virtual_end_ns': sim.now,
        'cvmsim.events_executed': sim.eventsExecuted,
        'cvmsim.fingerprint': sim.fingerprint.hex(),
        'cvmsim.soft_lockups': sim.softLockups.length,
      });
      observer.spans();
      return deliver(observer, factory, clock, options);
    },
  };
}

function rootAttributes(run: TraceRun, options: TraceOptions, clock: VirtualClock): Attributes {
  const attrs: Attributes = {
    'cvmsim.experiment': run.experiment,
    'cvmsim.seed': run.seed,
    'cvmsim.trace.level': options.level,
    'cvmsim.trace.max_spans': options.maxSpans,
    'cvmsim.trace.epoch': epochIso(clock.epoch),
  };
  for (const key of Object.keys(run.params).sort()) attrs[`cvmsim.param.${key}`] = toParamAttribute(run.params[key]);
  return attrs;
}

async function deliver(observer: TraceObserver, factory: SpanFactory, clock: VirtualClock, options: TraceOptions): Promise<TraceSummary> {
  const spans = factory.spans;
  const traceId = observer.traceId;
  for (const file of options.files) writeFileAtomic(file, traceFileBytes(file, traceId, spans, clock));
  const warnings: string[] = [];
  if (observer.droppedSpans > 0) {
    const covered = `${Math.round(observer.coverage * 100)}% of the run's hundredths with ops keep some`;
    warnings.push(`trace: ${observer.droppedSpans} of ${observer.opsSeen} ops cut to fit --trace-max-spans ${options.maxSpans}, spread over the run (${covered}); counted in cvmsim.dropped_spans on their parents and cvmsim.cut.* on their threads`);
  }
  if (observer.droppedEvents > 0) {
    warnings.push(`trace: ${observer.droppedEvents} span events over the per-span limit were cut (counted in cvmsim.dropped_events)`);
  }
  let otlp: TraceSummary['otlp'] = null;
  let exitCode: 0 | 3 = 0;
  if (options.otlp !== null) {
    const result = await exportOtlp(spans, resolveOtlpEndpoint(options.otlp));
    otlp = result.ok ? { endpoint: result.endpoint, ok: true } : { endpoint: result.endpoint, ok: false, error: result.error ?? 'export failed' };
    if (!result.ok) {
      const files = options.files.length > 0 ? 'trace files were still written' : 'no trace file was asked for';
      warnings.push(`warning: OTLP export to ${result.endpoint} failed after ${result.sent} of ${spans.length} spans: ${otlp.error} (${files})`);
      if (options.otlpRequired) exitCode = 3;
    }
  }
  return {
    traceId,
    jaegerUrl: jaegerUrl(traceId, otlp?.endpoint),
    spans: spans.length,
    droppedSpans: observer.droppedSpans,
    files: [...options.files],
    otlp,
    exitCode,
    warnings,
  };
}

/** The Jaeger UI beside the OTLP endpoint's host (localhost when not exporting). */
function jaegerUrl(traceId: string, endpoint: string | undefined): string {
  let host = 'localhost';
  if (endpoint !== undefined) {
    try {
      host = new URL(endpoint).hostname || host;
    } catch {
      // keep localhost
    }
  }
  const shown = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return `http://${shown}:${JAEGER_UI_PORT}/trace/${traceId}`;
}

function epochIso(epoch: [number, number]): string {
  const iso = new Date(epoch[0] * 1000).toISOString();
  return epoch[1] === 0 ? iso : iso.replace('.000Z', `.${String(epoch[1]).padStart(9, '0')}Z`);
}

/** Lines the CLI prints after a traced run: the trace id and URL, the files, then warnings. */
export function formatTraceSummary(summary: TraceSummary): string[] {
  const lines = [`trace ${summary.traceId}: ${summary.spans} spans${summary.droppedSpans > 0 ? ` (${summary.droppedSpans} cut)` : ''}`];
  for (const f of summary.files) lines.push(`  wrote ${f}`);
  if (summary.otlp !== null && summary.otlp.ok) lines.push(`  sent to ${summary.otlp.endpoint}; open ${summary.jaegerUrl}`);
  return [...lines, ...summary.warnings];
}
