/**
 * The event queue, ordered by (time, sequence). The sequence number only goes up, so events at
 * equal times run in the order they were scheduled. Future events live in a binary min-heap of
 * slot numbers (an Int32Array); each slot's time, sequence, auxiliary integer (a generation
 * token for cancellation) and item sit in parallel arrays and never move, so a sift moves one
 * integer per level (typed-array keys measured 1.3x faster than one object per event).
 *
 * Events scheduled for the current time (a lock hand-over, an event trigger, a spawn) go to a
 * FIFO ring instead of the heap. That keeps the order exact: every heap entry at the current
 * time was scheduled before the clock reached it, so it has a smaller sequence number than any
 * ring entry, and pop() takes those first.
 */
export interface Schedulable {
  /** Runs the event. Returns false when it was stale (cancelled) and did nothing. */
  fire(aux: number): boolean;
  /** A small integer naming the kind of event, mixed into the determinism fingerprint. */
  readonly kindId: number;
}

export class EventQueue {
  // The heap of slot numbers, ordered by (slotTime, slotSeq).
  private heap = new Int32Array(1024);
  private n = 0;
  // Slots: the events themselves. Free slots form a stack.
  private slotTime = new Float64Array(1024);
  private slotSeq = new Float64Array(1024);
  private slotAux = new Float64Array(1024);
  private slotItem: (Schedulable | null)[] = new Array(1024).fill(null);
  private free = new Int32Array(1024);
  private freeCount = 0;
  private slotsUsed = 0;

  private nextSeq = 0;
  /** The time of the last popped event. */
  private current = 0;
  private ringItems: (Schedulable | null)[] = new Array(256).fill(null);
  private ringSeqs = new Float64Array(256);
  private ringAuxs = new Float64Array(256);
  private ringHead = 0;
  private ringSize = 0;

  /** Filled by pop(): the popped event's key. */
  poppedTime = 0;
  poppedSeq = 0;
  poppedAux = 0;

  get size(): number {
    return this.n + this.ringSize;
  }

  push(time: number, item: Schedulable, aux: number): void {
    const seq = this.nextSeq++;
    if (time === this.current) {
      this.pushRing(item, aux, seq);
      return;
    }
    const slot = this.allocSlot();
    const slotTime = this.slotTime;
    const slotSeq = this.slotSeq;
    slotTime[slot] = time;
    slotSeq[slot] = seq;
    this.slotAux[slot] = aux;
    this.slotItem[slot] = item;
    if (this.n === this.heap.length) this.heap = grownInt32(this.heap);
    const heap = this.heap;
    let i = this.n++;
    // Sift up: the new event has the largest sequence so far, so ties stop at once.
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const ps = heap[parent]!;
      if (slotTime[ps]! <= time) break;
      heap[i] = ps;
      i = parent;
    }
    heap[i] = slot;
  }

  /** Pops the next event if its time is <= until, else returns null (one call per event for the loop). */
  popUntil(until: number): Schedulable | null {
    if (this.ringSize > 0) {
      if (this.current > until) return null;
      if (this.n === 0 || this.slotTime[this.heap[0]!]! !== this.current) return this.popRing();
      return this.popHeap();
    }
    if (this.n === 0 || this.slotTime[this.heap[0]!]! > until) return null;
    return this.popHeap();
  }

  private popHeap(): Schedulable {
    const heap = this.heap;
    const slotTime = this.slotTime;
    const slotSeq = this.slotSeq;
    const top = heap[0]!;
    const item = this.slotItem[top]!;
    this.poppedTime = slotTime[top]!;
    this.poppedSeq = slotSeq[top]!;
    this.poppedAux = this.slotAux[top]!;
    this.current = this.poppedTime;
    this.slotItem[top] = null;
    this.free[this.freeCount++] = top;
    const last = --this.n;
    if (last > 0) {
      const moving = heap[last]!;
      const t = slotTime[moving]!;
      const s = slotSeq[moving]!;
      let i = 0;
      for (;;) {
        let child = 2 * i + 1;
        if (child >= last) break;
        let cs = heap[child]!;
        let ct = slotTime[cs]!;
        const right = child + 1;
        if (right < last) {
          const rs = heap[right]!;
          const rt = slotTime[rs]!;
          if (rt < ct || (rt === ct && slotSeq[rs]! < slotSeq[cs]!)) {
            child = right;
            cs = rs;
            ct = rt;
          }
        }
        if (t < ct || (t === ct && s < slotSeq[cs]!)) break;
        heap[i] = cs;
        i = child;
      }
      heap[i] = moving;
    }
    return item;
  }

  private allocSlot(): number {
    if (this.freeCount > 0) return this.free[--this.freeCount]!;
    if (this.slotsUsed === this.slotTime.length) this.growSlots();
    return this.slotsUsed++;
  }

  private growSlots(): void {
    const size = this.slotTime.length * 2;
    this.slotTime = grownFloat64(this.slotTime, size);
    this.slotSeq = grownFloat64(this.slotSeq, size);
    this.slotAux = grownFloat64(this.slotAux, size);
    this.free = grownInt32(this.free);
    for (let i = this.slotItem.length; i < size; i++) this.slotItem.push(null);
  }

  private pushRing(item: Schedulable, aux: number, seq: number): void {
    if (this.ringSize === this.ringItems.length) this.growRing();
    const i = (this.ringHead + this.ringSize) & (this.ringItems.length - 1);
    this.ringItems[i] = item;
    this.ringSeqs[i] = seq;
    this.ringAuxs[i] = aux;
    this.ringSize++;
  }

  private popRing(): Schedulable {
    const i = this.ringHead;
    const item = this.ringItems[i]!;
    this.ringItems[i] = null;
    this.poppedTime = this.current;
    this.poppedSeq = this.ringSeqs[i]!;
    this.poppedAux = this.ringAuxs[i]!;
    this.ringHead = (i + 1) & (this.ringItems.length - 1);
    this.ringSize--;
    return item;
  }

  private growRing(): void {
    const size = this.ringItems.length;
    const items: (Schedulable | null)[] = new Array(size * 2).fill(null);
    const seqs = new Float64Array(size * 2);
    const auxs = new Float64Array(size * 2);
    for (let k = 0; k < size; k++) {
      const j = (this.ringHead + k) & (size - 1);
      items[k] = this.ringItems[j]!;
      seqs[k] = this.ringSeqs[j]!;
      auxs[k] = this.ringAuxs[j]!;
    }
    this.ringItems = items;
    this.ringSeqs = seqs;
    this.ringAuxs = auxs;
    this.ringHead = 0;
  }
}

function grownFloat64(a: Float64Array, size: number): Float64Array<ArrayBuffer> {
  const b = new Float64Array(size);
  b.set(a);
  return b;
}

function grownInt32(a: Int32Array): Int32Array<ArrayBuffer> {
  const b = new Int32Array(a.length * 2);
  b.set(a);
  return b;
}
