import { ROOT_CONTEXT, SpanKind, trace, type Attributes, type HrTime, type Link, type Span, type Tracer } from '@opentelemetry/api';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOnSampler, BasicTracerProvider, SimpleSpanProcessor, type IdGenerator, type ReadableSpan, type SpanExporter,
  type SpanLimits,
} from '@opentelemetry/sdk-trace-base';

/** The instrumentation scope every cvmsim span carries. */
export const SCOPE_NAME = 'cvmsim';

/**
 * Events one span may carry. The observer stops adding at this count and counts the rest in
 * `cvmsim.dropped_events` (the SDK would silently drop the oldest instead); a span with more
 * than a thousand log lines is unreadable in the Jaeger UI anyway.
 */
export const EVENTS_PER_SPAN_MAX = 1024;

/**
 * Every limit set explicitly, so OTEL_SPAN_* and OTEL_ATTRIBUTE_* in the environment cannot
 * change the bytes of a trace. The SDK default of 128 attributes is raised for the root span,
 * which carries every experiment parameter.
 */
const SPAN_LIMITS: Required<SpanLimits> = {
  attributeValueLengthLimit: Infinity,
  attributeCountLimit: 1024,
  linkCountLimit: 128,
  eventCountLimit: EVENTS_PER_SPAN_MAX,
  attributePerEventCountLimit: 128,
  attributePerLinkCountLimit: 128,
};

/** Keeps every span the processor hands over, in the order it hands them (the order they end). */
class CollectingExporter implements SpanExporter {
  readonly spans: ReadableSpan[] = [];

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    for (const s of spans) this.spans.push(s);
    resultCallback({ code: ExportResultCode.SUCCESS });
  }

  async shutdown(): Promise<void> {}
}

/**
 * The OpenTelemetry SDK as cvmsim uses it. SDK 2.x has one resource per tracer provider, and
 * Jaeger lists services by the resource's service.name, so there is one provider per service
 * (guest, kvm, vmm, tdx-module, snp-firmware, cvmsim), all sharing one seeded IdGenerator and one
 * SimpleSpanProcessor. Spans therefore take ids in the order they start and are exported in the
 * order they end, both fixed by the simulation. Sampling is always on: an explicit sampler
 * overrides OTEL_TRACES_SAMPLER, which the SDK would otherwise read.
 */
export class SpanFactory {
  private readonly exporter = new CollectingExporter();
  private readonly processor = new SimpleSpanProcessor(this.exporter);
  private readonly tracers = new Map<string, Tracer>();

  constructor(private readonly idGenerator: IdGenerator) {}

  /** Starts a span of `service`; parent null makes a root span (a new trace id). */
  start(service: string, name: string, parent: Span | null, startTime: HrTime, attributes: Attributes, links?: Link[]): Span {
    const context = parent === null ? ROOT_CONTEXT : trace.setSpan(ROOT_CONTEXT, parent);
    return this.tracerFor(service).startSpan(name, { kind: SpanKind.INTERNAL, startTime, attributes, links }, context);
  }

  /** Every ended span, in end order. Valid after flush(). */
  get spans(): readonly ReadableSpan[] {
    return this.exporter.spans;
  }

  /** Waits for the processor's pending exports (each is a resolved promise; this drains them). */
  async flush(): Promise<void> {
    await this.processor.forceFlush();
  }

  private tracerFor(service: string): Tracer {
    let tracer = this.tracers.get(service);
    if (tracer === undefined) {
      const provider = new BasicTracerProvider({
        resource: resourceFromAttributes({ 'service.name': service }),
        idGenerator: this.idGenerator,
        sampler: new AlwaysOnSampler(),
        spanLimits: SPAN_LIMITS,
        spanProcessors: [this.processor],
      });
      tracer = provider.getTracer(SCOPE_NAME);
      this.tracers.set(service, tracer);
    }
    return tracer;
  }
}
