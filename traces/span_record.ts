import type { Attrs } from '../sim/index.ts';
import type { SimSpan } from './sim_span.ts';

/**
 * What a span will be, recorded while the simulation runs; only the records the budget keeps
 * become OpenTelemetry spans, when the run ends. A record is cheap (no ids, no HrTime, engine
 * attributes kept as given), which is what lets a trace look at every operation of a run and
 * still write only a budget's worth of them.
 */
export type RecordKind =
  /** The run: one per trace. */
  | 'root'
  /** A CPU's lane: what ran on it (threads pinned to it, or runs reported by its scheduler). */
  | 'lane'
  /** A thread's lifetime. */
  | 'actor'
  /** An op marked 'cvmsim.level': 'phase' (boot, init, userspace). */
  | 'phase'
  /** An operation, or a stretch a runner held a CPU (a lane's run). */
  | 'op'
  /** A lock wait of 1 us or more (level lock). */
  | 'wait';

export interface RecordEvent {
  name: string;
  atNs: number;
  attrs: Attrs;
}

/** Where a record stands with the span budget. */
export const enum Fate {
  /** Not ended yet. */
  Open = 0,
  /** Ended and, so far, within the budget. */
  Candidate = 1,
  /** Cut by the budget (counted on its nearest kept ancestor and its actor). */
  Cut = 2,
  /** Structure, an error, or an op whose end is delayed: never cut. */
  Kept = 3,
}

/** Ops of the run cut by the budget, by name: how many and their total time. */
export type CutTally = Map<string, { count: number; ns: number }>;

export class SpanRecord {
  endNs = -1;
  endAttrs: Attrs | null = null;
  events: RecordEvent[] | null = null;
  droppedEvents = 0;
  /** A record in another actor this one was caused by (a FOLLOWS_FROM link). */
  link: SpanRecord | null = null;
  errorMessage: string | null = null;
  fate: Fate = Fate.Open;
  /** Spans under this one cut by the budget (their own cut descendants included). */
  cutBelow = 0;
  /** Actors only: what the budget cut of this actor's ops. */
  cut: CutTally | null = null;
  /** This op, or one under it, waited for a lock or was refused by a try-lock. */
  contended = false;
  /** The sampling key: a hash of the op's id, raised to the largest key under it. */
  sampleKey: number;
  /** The span made from this record when the run ended (null until then, or when cut). */
  span: SimSpan | null = null;
  /** Sub-microsecond lock waits folded into this op. */
  shortWaits = 0;
  shortWaitNs = 0;

  constructor(
    /** Begin order: the op's id, unique in the run. */
    readonly seq: number,
    readonly kind: RecordKind,
    readonly service: string,
    readonly name: string,
    /** The record it nests in (null for the root). Reassigned when an exit nests under its cause. */
    public parent: SpanRecord | null,
    /** The actor record whose cut tally counts this op (the lane for an idle thread). */
    readonly actor: SpanRecord | null,
    readonly startNs: number,
    readonly attrs: Attrs | undefined,
    sampleKey: number,
  ) {
    this.sampleKey = sampleKey;
  }

  get durationNs(): number {
    return this.endNs - this.startNs;
  }

  get structural(): boolean {
    return this.kind === 'root' || this.kind === 'lane' || this.kind === 'actor' || this.kind === 'phase';
  }
}

/** A 32-bit mix of the op's id (murmur3's finaliser): a deterministic, well-spread sampling key. */
export function sampleHash(seq: number, salt: number): number {
  let h = (seq ^ salt) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}
