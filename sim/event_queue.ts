/**
 * The event queue: a binary min-heap ordered by (time, sequence). The sequence number only goes
 * up, so events at equal times run in the order they were scheduled. Keys live in typed arrays
 * (measured 1.3x faster than one object per event); the item and an auxiliary integer (a
 * generation token for cancellation) ride along in parallel arrays.
 */
export interface Schedulable {
  /** Runs the event. Returns false when it was stale (cancelled) and did nothing. */
  fire(aux: number): boolean;
  /** A small integer naming the kind of event, mixed into the determinism fingerprint. */
  readonly kindId: number;
}

export class EventQueue {
  private times = new Float64Array(1024);
  private seqs = new Float64Array(1024);
  private auxs = new Float64Array(1024);
  private items: (Schedulable | null)[] = new Array(1024).fill(null);
  private n = 0;
  private nextSeq = 0;

  /** Filled by pop(): the popped event's key. */
  poppedTime = 0;
  poppedSeq = 0;
  poppedAux = 0;

  get size(): number {
    return this.n;
  }

  peekTime(): number {
    return this.n === 0 ? Infinity : this.times[0]!;
  }

  push(time: number, item: Schedulable, aux: number): void {
    if (this.n === this.times.length) this.grow();
    const seq = this.nextSeq++;
    let i = this.n++;
    const times = this.times;
    const seqs = this.seqs;
    // Sift up.
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const pt = times[parent]!;
      if (pt < time || (pt === time && seqs[parent]! < seq)) break;
      times[i] = pt;
      seqs[i] = seqs[parent]!;
      this.auxs[i] = this.auxs[parent]!;
      this.items[i] = this.items[parent]!;
      i = parent;
    }
    times[i] = time;
    seqs[i] = seq;
    this.auxs[i] = aux;
    this.items[i] = item;
  }

  pop(): Schedulable {
    const times = this.times;
    const seqs = this.seqs;
    const auxs = this.auxs;
    const items = this.items;
    const top = items[0]!;
    this.poppedTime = times[0]!;
    this.poppedSeq = seqs[0]!;
    this.poppedAux = auxs[0]!;
    const last = --this.n;
    if (last > 0) {
      const t = times[last]!;
      const s = seqs[last]!;
      const a = auxs[last]!;
      const it = items[last]!;
      let i = 0;
      // Sift down.
      for (;;) {
        let child = 2 * i + 1;
        if (child >= last) break;
        const right = child + 1;
        if (right < last) {
          const ct = times[child]!;
          const rt = times[right]!;
          if (rt < ct || (rt === ct && seqs[right]! < seqs[child]!)) child = right;
        }
        const ct = times[child]!;
        if (t < ct || (t === ct && s < seqs[child]!)) break;
        times[i] = ct;
        seqs[i] = seqs[child]!;
        auxs[i] = auxs[child]!;
        items[i] = items[child]!;
        i = child;
      }
      times[i] = t;
      seqs[i] = s;
      auxs[i] = a;
      items[i] = it;
    }
    items[last] = null;
    return top;
  }

  private grow(): void {
    const size = this.times.length * 2;
    const grow = (a: Float64Array) => {
      const b = new Float64Array(size);
      b.set(a);
      return b;
    };
    this.times = grow(this.times);
    this.seqs = grow(this.seqs);
    this.auxs = grow(this.auxs);
    for (let i = this.items.length; i < size; i++) this.items.push(null);
  }
}
