/**
 * Traces of a run: OpenTelemetry spans in virtual time, written as Jaeger, OTLP and Perfetto
 * files and exported live over OTLP/HTTP. The only place in cvmsim that imports @opentelemetry/*.
 *
 * The CLI (experiments/) uses it like this:
 *   const { options, rest } = parseTraceFlags(argv);      // TraceUsageError -> exit 2
 *   const session = startTracing(sim, { experiment, params, seed }, options);
 *   try { experiment.run(params, sim) } catch (e) { error = e }
 *   const summary = await session.finish(error);          // files, OTLP export
 *   formatTraceSummary(summary).forEach((l) => console.error(l));
 *   exit code: summary.exitCode (3 when --otlp-required and the export failed)
 */
export {
  type TraceLevel, type TraceOptions, TRACE_LEVELS, TRACE_FILE_ENDINGS, defaultTraceOptions, parseTraceFlags,
  validateTraceOptions, TraceUsageError, DEFAULT_EPOCH, DEFAULT_MAX_SPANS,
} from './options.ts';
export { startTracing, formatTraceSummary, type TraceSession, type TraceSummary, type TraceRun } from './session.ts';
export { traceFileForRun } from './trace_files.ts';
export { resolveOtlpEndpoint } from './otlp_export.ts';
export { traceBenchObserver } from './bench.ts';
