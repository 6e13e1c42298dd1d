import { describe, expect, it } from 'vitest';
import { EventQueue, type Schedulable } from '../../sim/event_queue.ts';
import { RngRegistry } from '../../sim/index.ts';

class Tag implements Schedulable {
  readonly kindId = 0;
  constructor(readonly label: number) {}
  fire(): boolean {
    return true;
  }
}

describe('event queue', () => {
  it('pops in (time, sequence) order, including events scheduled at the current time while popping', () => {
    const rng = new RngRegistry(11).get('queue');
    const q = new EventQueue();
    const expected: [number, number][] = []; // (time, seq) of every push
    let seq = 0;
    let now = 0;
    const popped: [number, number][] = [];
    for (let round = 0; round < 20_000; round++) {
      const pushes = rng.int(3);
      for (let k = 0; k < pushes; k++) {
        // Often at the current time (the FIFO ring), otherwise in the future, with many ties.
        const t = rng.bernoulli(1, 3) ? now : now + rng.int(50);
        q.push(t, new Tag(seq), 0);
        expected.push([t, seq++]);
      }
      if (q.size > 0 && rng.bernoulli(2, 3)) {
        const item = q.popUntil(Infinity) as Tag;
        now = q.poppedTime;
        popped.push([q.poppedTime, q.poppedSeq]);
        expect(item.label).toBe(q.poppedSeq);
      }
    }
    while (q.size > 0) {
      q.popUntil(Infinity);
      popped.push([q.poppedTime, q.poppedSeq]);
    }
    // Every event comes out exactly once, and never before an event that must precede it.
    expect(popped.length).toBe(expected.length);
    for (let i = 1; i < popped.length; i++) {
      const [t0, s0] = popped[i - 1]!;
      const [t1, s1] = popped[i]!;
      expect(t1 > t0 || (t1 === t0 && s1 > s0), `event ${i}: (${t1},${s1}) after (${t0},${s0})`).toBe(true);
    }
  });
});
