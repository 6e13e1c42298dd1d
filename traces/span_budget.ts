import { Fate, type SpanRecord } from './span_record.ts';

/**
 * The span budget (--trace-max-spans) spent over the whole run. The structure is always kept:
 * the root, the lanes, one span per actor, the phases. The rest of the budget goes to ops as
 * they end, half to the most notable (those that waited on a lock or met a BUSY answer, then
 * the longest) and half to a sample drawn by a hash of the op's id, so every stretch of the run
 * keeps ops in proportion to how many it had. Both halves are bounded heaps: when one is full,
 * the least notable op moves to the sample, and the sample's lowest key is cut. A parent's keys
 * are at least its children's (ops nest in time; the sampling key is raised to the largest under
 * it; ties cut the later op first), so an op is never kept without its parent. The choice
 * depends only on the ops, never on wall time: the same run keeps the same spans.
 */
export class SpanBudget {
  private readonly notable = new RecordHeap(lessNotable);
  private readonly sample = new RecordHeap(lessSampled);
  /** Ops offered while everything still fits: kept in a list, heaped only once the budget is full. */
  private fitting: SpanRecord[] | null = [];
  /** Spans kept whatever the budget (structure, errors). */
  structural = 0;
  cutSpans = 0;
  /** When each op started, to tell how much of the run the kept ops cover. */
  readonly seen = new StartHistogram();

  constructor(readonly maxSpans: number) {}

  /** A span kept whatever the budget: it takes room from the ops. */
  keep(r: SpanRecord): void {
    r.fate = Fate.Kept;
    this.structural++;
    if (this.fitting === null) this.trim();
    else if (this.fitting.length + this.structural > this.maxSpans) this.overflow();
  }

  /** An op ended: it competes for the rest of the budget. */
  offer(r: SpanRecord): void {
    r.fate = Fate.Candidate;
    if (this.fitting !== null) {
      this.fitting.push(r);
      if (this.fitting.length + this.structural > this.maxSpans) this.overflow();
      return;
    }
    // Once both halves are full most ops lose at once: compared with the least kept, never heaped.
    const room = this.maxSpans - this.structural;
    const notableRoom = Math.floor(room / 2);
    if (this.notable.size >= notableRoom && this.notable.size > 0 && lessNotable(r, this.notable.peek())) {
      if (this.sample.size >= room - this.notable.size && (this.sample.size === 0 || lessSampled(r, this.sample.peek()))) {
        this.cut(r);
        return;
      }
      this.sample.push(r);
    } else {
      this.notable.push(r);
    }
    this.trim();
  }

  /** The ops the budget keeps, in no particular order. */
  kept(): SpanRecord[] {
    return this.fitting !== null ? [...this.fitting] : [...this.notable.all(), ...this.sample.all()];
  }

  /** The first op that does not fit: from now on the ops compete, in the order they were offered. */
  private overflow(): void {
    const offered = this.fitting!;
    this.fitting = null;
    for (const r of offered) this.offer(r);
    this.trim();
  }

  /** Ops still in the budget (kept when the run ends). */
  get candidates(): number {
    return this.fitting !== null ? this.fitting.length : this.notable.size + this.sample.size;
  }

  private trim(): void {
    const room = Math.max(0, this.maxSpans - this.structural);
    const notableRoom = Math.floor(room / 2);
    while (this.notable.size > notableRoom) this.sample.push(this.notable.pop());
    while (this.sample.size > room - Math.min(notableRoom, this.notable.size)) this.cut(this.sample.pop());
  }

  /** Counts a cut op on its nearest kept-so-far ancestor and in its actor's tally. */
  private cut(r: SpanRecord): void {
    r.fate = Fate.Cut;
    this.cutSpans++;
    let p = r.parent;
    while (p !== null && p.fate === Fate.Cut) p = p.parent;
    if (p !== null) p.cutBelow += 1 + r.cutBelow;
    const actor = r.actor;
    if (actor === null) return;
    if (actor.cut === null) actor.cut = new Map();
    const t = actor.cut.get(r.name);
    if (t === undefined) actor.cut.set(r.name, { count: 1, ns: r.durationNs });
    else (t.count++, (t.ns += r.durationNs));
  }
}

/** a is less notable than b: not contended before contended, then shorter, then the later op. */
function lessNotable(a: SpanRecord, b: SpanRecord): boolean {
  if (a.contended !== b.contended) return !a.contended;
  const da = a.durationNs;
  const db = b.durationNs;
  return da !== db ? da < db : a.seq > b.seq;
}

/** a leaves the sample before b: the lower key, then the later op. */
function lessSampled(a: SpanRecord, b: SpanRecord): boolean {
  return a.sampleKey !== b.sampleKey ? a.sampleKey < b.sampleKey : a.seq > b.seq;
}

/** A binary min-heap of records under `less`. */
class RecordHeap {
  private readonly items: SpanRecord[] = [];

  constructor(private readonly less: (a: SpanRecord, b: SpanRecord) => boolean) {}

  get size(): number {
    return this.items.length;
  }

  peek(): SpanRecord {
    return this.items[0]!;
  }

  all(): readonly SpanRecord[] {
    return this.items;
  }

  push(r: SpanRecord): void {
    const items = this.items;
    let i = items.length;
    items.push(r);
    while (i > 0) {
      const up = (i - 1) >> 1;
      if (!this.less(r, items[up]!)) break;
      items[i] = items[up]!;
      i = up;
    }
    items[i] = r;
  }

  pop(): SpanRecord {
    const items = this.items;
    const top = items[0]!;
    const last = items.pop()!;
    if (items.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= items.length) break;
        const r = l + 1;
        const c = r < items.length && this.less(items[r]!, items[l]!) ? r : l;
        if (!this.less(items[c]!, last)) break;
        items[i] = items[c]!;
        i = c;
      }
      items[i] = last;
    }
    return top;
  }
}

/**
 * How many ops started in each slice of the run, in at most 1024 slices whose width doubles
 * (merging neighbours) as the run grows: bounded memory for any run length.
 */
export class StartHistogram {
  widthNs = 1000;
  counts = new Float64Array(1024);

  add(atNs: number): void {
    while (atNs >= this.widthNs * this.counts.length) this.widen();
    this.counts[Math.floor(atNs / this.widthNs)]!++;
  }

  private widen(): void {
    const c = this.counts;
    const half = c.length / 2;
    for (let i = 0; i < half; i++) c[i] = c[2 * i]! + c[2 * i + 1]!;
    c.fill(0, half);
    this.widthNs *= 2;
  }

  /**
   * Of the hundredths of [0, endNs] in which ops started, the fraction in which at least one
   * of `keptStarts` did (each slice counted in the hundredth where it begins).
   */
  coverage(keptStarts: readonly number[], endNs: number): number {
    if (!(endNs > 0)) return 1;
    const part = (ns: number) => Math.min(99, Math.floor((ns * 100) / endNs));
    const seen = new Set<number>();
    this.counts.forEach((n, i) => n > 0 && seen.add(part(i * this.widthNs)));
    if (seen.size === 0) return 1;
    const kept = new Set<number>();
    for (const s of keptStarts) kept.add(part(Math.floor(s / this.widthNs) * this.widthNs));
    let covered = 0;
    for (const p of seen) if (kept.has(p)) covered++;
    return covered / seen.size;
  }
}
