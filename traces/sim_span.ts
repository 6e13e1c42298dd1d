import { SpanStatusCode, type Attributes, type HrTime, type Link, type SpanContext, type SpanKind, type SpanStatus } from '@opentelemetry/api';
import type { InstrumentationScope } from '@opentelemetry/core';
import type { Resource } from '@opentelemetry/resources';
import type { ReadableSpan, TimedEvent } from '@opentelemetry/sdk-trace-base';

/**
 * The limits a span keeps to (the SDK's SpanLimits, every one set explicitly so that
 * OTEL_SPAN_* and OTEL_ATTRIBUTE_* in the environment cannot change a trace).
 */
export interface SimSpanLimits {
  attributeCountLimit: number;
  eventCountLimit: number;
  linkCountLimit: number;
  attributePerEventCountLimit: number;
  attributePerLinkCountLimit: number;
}

/**
 * A finished-or-running span in virtual time, readable by the OTLP serializer and by the Jaeger
 * and Perfetto writers exactly as the SDK's own span is. It is what the SDK's Tracer.startSpan
 * and SpanImpl would build for cvmsim's calls (explicit HrTime start and end, attribute values
 * that are already valid, no sampler attributes), without what a simulation does not use: the
 * context API, the sampler, span metrics, wall-clock reads and a processor per span. Values are
 * the engine's, so no truncation applies (attributeValueLengthLimit is Infinity).
 */
export class SimSpan implements ReadableSpan {
  readonly attributes: Attributes = {};
  readonly links: Link[] = [];
  readonly events: TimedEvent[] = [];
  status: SpanStatus = { code: SpanStatusCode.UNSET };
  endTime: HrTime = [0, 0];
  droppedAttributesCount = 0;
  droppedEventsCount = 0;
  droppedLinksCount = 0;
  private attributeCount = 0;
  private isEnded = false;

  constructor(
    private readonly context: SpanContext,
    readonly parentSpanContext: SpanContext | undefined,
    readonly name: string,
    readonly kind: SpanKind,
    readonly startTime: HrTime,
    readonly resource: Resource,
    readonly instrumentationScope: InstrumentationScope,
    private readonly limits: SimSpanLimits,
    attributes: Attributes,
    links: readonly Link[] | undefined,
  ) {
    if (links !== undefined) for (const link of links) this.addLink(link);
    this.setAttributes(attributes);
  }

  spanContext(): SpanContext {
    return this.context;
  }

  get ended(): boolean {
    return this.isEnded;
  }

  get duration(): HrTime {
    const s = this.endTime[0] - this.startTime[0];
    const ns = this.endTime[1] - this.startTime[1];
    return ns < 0 ? [s - 1, ns + 1_000_000_000] : [s, ns];
  }

  setAttribute(key: string, value: Attributes[string]): this {
    if (value === undefined || value === null || this.isEnded) return this;
    const isNew = !Object.hasOwn(this.attributes, key);
    if (isNew && this.attributeCount >= this.limits.attributeCountLimit) {
      this.droppedAttributesCount++;
      return this;
    }
    this.attributes[key] = value;
    if (isNew) this.attributeCount++;
    return this;
  }

  setAttributes(attributes: Attributes): this {
    for (const key of Object.keys(attributes)) this.setAttribute(key, attributes[key]);
    return this;
  }

  /** Adds an event; past the limit the oldest goes, counted in droppedEventsCount (the SDK's rule). */
  addEvent(name: string, attributes: Attributes, time: HrTime): this {
    if (this.isEnded) return this;
    if (this.events.length >= this.limits.eventCountLimit) {
      this.events.shift();
      this.droppedEventsCount++;
    }
    const kept: Attributes = {};
    let count = 0;
    let dropped = 0;
    for (const key of Object.keys(attributes)) {
      if (count >= this.limits.attributePerEventCountLimit) {
        dropped++;
        continue;
      }
      kept[key] = attributes[key];
      count++;
    }
    this.events.push({ name, attributes: kept, time, droppedAttributesCount: dropped });
    return this;
  }

  /** ERROR with a message, or OK; an OK status is final (the SDK's rule). */
  setStatus(status: SpanStatus): this {
    if (this.isEnded || status.code === SpanStatusCode.UNSET || this.status.code === SpanStatusCode.OK) return this;
    this.status = status.code === SpanStatusCode.ERROR && typeof status.message === 'string'
      ? { code: status.code, message: status.message }
      : { code: status.code };
    return this;
  }

  /** Ends the span at `time` (an end before the start is clamped to the start, as the SDK does). */
  end(time: HrTime): void {
    if (this.isEnded) return;
    const before = time[0] < this.startTime[0] || (time[0] === this.startTime[0] && time[1] < this.startTime[1]);
    this.endTime = before ? [this.startTime[0], this.startTime[1]] : time;
    this.isEnded = true;
  }

  private addLink(link: Link): void {
    if (this.links.length >= this.limits.linkCountLimit) {
      this.links.shift();
      this.droppedLinksCount++;
    }
    const attributes: Attributes = {};
    let count = 0;
    let dropped = 0;
    for (const key of Object.keys(link.attributes ?? {})) {
      if (count >= this.limits.attributePerLinkCountLimit) {
        dropped++;
        continue;
      }
      attributes[key] = link.attributes![key];
      count++;
    }
    const kept: Link = { context: link.context };
    if (count > 0) kept.attributes = attributes;
    if (dropped > 0) kept.droppedAttributesCount = dropped;
    this.links.push(kept);
  }
}
