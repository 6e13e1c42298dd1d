import { SpanKind, TraceFlags, type Attributes, type HrTime, type Link } from '@opentelemetry/api';
import type { InstrumentationScope } from '@opentelemetry/core';
import { resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import type { IdGenerator, ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { SimSpan, type SimSpanLimits } from './sim_span.ts';

/** The instrumentation scope every cvmsim span carries. */
export const SCOPE_NAME = 'cvmsim';

/**
 * Events one span may carry. The observer stops adding at this count and counts the rest in
 * `cvmsim.dropped_events` (the SDK would silently drop the oldest instead); a span with more
 * than a thousand log lines is unreadable in the Jaeger UI anyway.
 */
export const EVENTS_PER_SPAN_MAX = 1024;

/**
 * Every limit set explicitly. The SDK default of 128 attributes is raised for the root span,
 * which carries every experiment parameter.
 */
const SPAN_LIMITS: SimSpanLimits = {
  attributeCountLimit: 1024,
  linkCountLimit: 128,
  eventCountLimit: EVENTS_PER_SPAN_MAX,
  attributePerEventCountLimit: 128,
  attributePerLinkCountLimit: 128,
};

/**
 * Spans as the OpenTelemetry SDK would make them for cvmsim, made directly. Jaeger lists
 * services by the resource's service.name, so each service (guest/vm1, kvm, vmm/vm1, tdx-module,
 * snp-firmware, cvmsim) has one resource; every span shares one seeded IdGenerator, drawn as the
 * SDK's Tracer draws (the span id, then for a root the trace id). Spans therefore take ids in
 * the order they start and are kept in the order they end, both fixed by the simulation: the
 * same bytes as the SDK's BasicTracerProvider with a SimpleSpanProcessor, at a fraction of the
 * cost (no context, sampler, span metrics or promise per span; see SimSpan).
 */
export class SpanFactory {
  private readonly ended: ReadableSpan[] = [];
  private readonly resources = new Map<string, Resource>();
  private readonly scope: InstrumentationScope = { name: SCOPE_NAME, version: undefined, schemaUrl: undefined };

  constructor(
    private readonly idGenerator: IdGenerator,
    /** Resource attributes every service carries besides its service.name (the version, the experiment). */
    private readonly resourceAttributes: Attributes = {},
  ) {}

  /** Starts a span of `service`; parent null makes a root span (a new trace id). */
  start(service: string, name: string, parent: SimSpan | null, startTime: HrTime, attributes: Attributes, links?: Link[]): SimSpan {
    const spanId = this.idGenerator.generateSpanId();
    const parentContext = parent?.spanContext();
    const traceId = parentContext === undefined ? this.idGenerator.generateTraceId() : parentContext.traceId;
    const context = { traceId, spanId, traceFlags: TraceFlags.SAMPLED, traceState: undefined };
    return new SimSpan(context, parentContext, name, SpanKind.INTERNAL, startTime, this.resourceFor(service), this.scope, SPAN_LIMITS, attributes, links);
  }

  /** Ends a span at `time` and keeps it (spans are kept in the order they end). */
  end(span: SimSpan, time: HrTime): void {
    if (span.ended) return;
    span.end(time);
    this.ended.push(span);
  }

  /** Every ended span, in end order. */
  get spans(): readonly ReadableSpan[] {
    return this.ended;
  }

  private resourceFor(service: string): Resource {
    let resource = this.resources.get(service);
    if (resource === undefined) {
      resource = resourceFromAttributes({ 'service.name': service, ...this.resourceAttributes });
      this.resources.set(service, resource);
    }
    return resource;
  }
}
