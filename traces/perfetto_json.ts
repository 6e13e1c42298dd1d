import type { Attributes } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import type { VirtualClock } from './hrtime.ts';

/**
 * The Chrome trace-event format, which ui.perfetto.dev and chrome://tracing open. Each actor is a
 * thread (tid) inside its service's process (pid); an op runs on the thread of the actor it nests
 * under, so a TDX-module op inside a SEAMCALL sits on the calling vCPU's track with category
 * `tdx-module`. Times are virtual microseconds with nanosecond fractions, from virtual zero.
 * Links become flow arrows.
 */
type TraceEvent = Record<string, unknown>;

/** Track ids of CPU lanes, above any thread id. */
const LANE_TID_BASE = 1_000_000;

interface Lane {
  pid: number;
  tid: number;
}

export function toPerfettoFile(traceId: string, spans: readonly ReadableSpan[], clock: VirtualClock): object {
  const pids = new Map<string, number>();
  const lanes = new Map<string, Lane>();
  let laneCount = 0;
  const byId = new Map<string, ReadableSpan>();
  for (const s of spans) byId.set(s.spanContext().spanId, s);
  const meta: TraceEvent[] = [];
  const pidOf = (service: string): number => {
    let pid = pids.get(service);
    if (pid === undefined) {
      pid = pids.size + 1;
      pids.set(service, pid);
      meta.push({ ph: 'M', name: 'process_name', pid, tid: 0, args: { name: service } });
    }
    return pid;
  };
  /** The lane of a span: its own if it is an actor (thread.id) or the root, else its parent's. */
  const laneOf = (s: ReadableSpan): Lane => {
    const id = s.spanContext().spanId;
    const known = lanes.get(id);
    if (known !== undefined) return known;
    const parent = s.parentSpanContext === undefined ? undefined : byId.get(s.parentSpanContext.spanId);
    let lane: Lane;
    const isLane = s.attributes['cvmsim.lane'] !== undefined;
    if (typeof s.attributes['thread.id'] === 'number' || isLane || parent === undefined) {
      const pid = pidOf(String(s.resource.attributes['service.name']));
      const tid = typeof s.attributes['thread.id'] === 'number' ? s.attributes['thread.id'] + 1 : isLane ? LANE_TID_BASE + ++laneCount : 0;
      meta.push({ ph: 'M', name: 'thread_name', pid, tid, args: { name: s.name } });
      lane = { pid, tid };
    } else {
      lane = laneOf(parent);
    }
    lanes.set(id, lane);
    return lane;
  };
  const us = (t: ReadableSpan['startTime']): number => clock.toVirtualNs(t) / 1000;

  // Parents before children: by start, then the longer first, then the shallower (equal extents).
  const depthOf = (s: ReadableSpan): number => {
    let depth = 0;
    for (let p = s.parentSpanContext; p !== undefined; p = byId.get(p.spanId)?.parentSpanContext) depth++;
    return depth;
  };
  const ordered = spans.map((s, index) => ({
    s, index, start: clock.toVirtualNs(s.startTime), end: clock.toVirtualNs(s.endTime), depth: depthOf(s),
  }));
  ordered.sort((a, b) => a.start - b.start || b.end - a.end || a.depth - b.depth || a.index - b.index);
  const events: TraceEvent[] = [];
  let flow = 0;
  for (const { s } of ordered) {
    const lane = laneOf(s);
    const cat = String(s.resource.attributes['service.name']);
    const ts = us(s.startTime);
    events.push({ ph: 'X', name: s.name, cat, ts, dur: us(s.endTime) - ts, pid: lane.pid, tid: lane.tid, args: args(s.attributes, s.spanContext().spanId) });
    for (const e of s.events) {
      events.push({ ph: 'i', s: 't', name: e.name, cat, ts: us(e.time), pid: lane.pid, tid: lane.tid, args: e.attributes ?? {} });
    }
    for (const link of s.links) {
      const source = byId.get(link.context.spanId);
      if (source === undefined) continue;
      const from = laneOf(source);
      flow++;
      events.push({ ph: 's', id: flow, name: 'link', cat: 'link', ts: us(source.startTime), pid: from.pid, tid: from.tid });
      events.push({ ph: 'f', bp: 'e', id: flow, name: 'link', cat: 'link', ts, pid: lane.pid, tid: lane.tid });
    }
  }
  return { traceEvents: [...meta, ...events], displayTimeUnit: 'ns', otherData: { traceId, epoch: clock.epoch } };
}

function args(attributes: Attributes, spanId: string): Record<string, unknown> {
  return { ...attributes, 'span.id': spanId };
}
