import seedrandom from 'seedrandom';

/**
 * The plain reference the engine is measured against: a binary heap of (time, seq, callback)
 * objects and nothing else, the fastest simple way to write these simulations by hand. Each
 * workload uses the same random generator and the same draws as its engine twin.
 */
interface Entry {
  t: number;
  seq: number;
  fn: () => void;
}

class PlainLoop {
  private heap: Entry[] = [];
  private seq = 0;
  now = 0;

  at(t: number, fn: () => void): void {
    const heap = this.heap;
    const e = { t, seq: this.seq++, fn };
    let i = heap.length;
    heap.push(e);
    while (i > 0) {
      const p = (i - 1) >> 1;
      const pe = heap[p]!;
      if (pe.t < t || (pe.t === t && pe.seq < e.seq)) break;
      heap[i] = pe;
      i = p;
    }
    heap[i] = e;
  }

  run(): void {
    const heap = this.heap;
    while (heap.length > 0) {
      const top = heap[0]!;
      const last = heap.pop()!;
      if (heap.length > 0) {
        let i = 0;
        const n = heap.length;
        for (;;) {
          let c = 2 * i + 1;
          if (c >= n) break;
          const r = c + 1;
          if (r < n && (heap[r]!.t < heap[c]!.t || (heap[r]!.t === heap[c]!.t && heap[r]!.seq < heap[c]!.seq))) c = r;
          const ce = heap[c]!;
          if (last.t < ce.t || (last.t === ce.t && last.seq < ce.seq)) break;
          heap[i] = ce;
          i = c;
        }
        heap[i] = last;
      }
      this.now = top.t;
      top.fn();
    }
  }
}

function exp(rng: () => number, mean: number): number {
  return Math.round(-mean * Math.log(1 - rng()));
}

export function referenceTimeouts(processes: number, perProcess: number, seed: string): number {
  const loop = new PlainLoop();
  const rng = seedrandom.xor4096(seed);
  let done = 0;
  for (let p = 0; p < processes; p++) {
    let left = perProcess;
    const tick = () => {
      done++;
      if (--left > 0) loop.at(loop.now + exp(rng, 1000), tick);
    };
    loop.at(exp(rng, 1000), tick);
  }
  loop.run();
  return done;
}

export function referenceMutex(workers: number, acquisitions: number, seed: string): number {
  const loop = new PlainLoop();
  const rng = seedrandom.xor4096(seed);
  let holder = -1;
  const queue: number[] = [];
  let count = 0;
  const think = (w: number) => loop.at(loop.now + exp(rng, 63_000), () => acquire(w));
  const acquire = (w: number) => {
    if (holder === -1) grant(w);
    else queue.push(w);
  };
  const grant = (w: number) => {
    holder = w;
    count++;
    loop.at(loop.now + exp(rng, 1_000), () => release(w));
  };
  const release = (w: number) => {
    holder = -1;
    if (queue.length > 0) grant(queue.shift()!);
    if (count < acquisitions) think(w);
  };
  for (let w = 0; w < workers; w++) think(w);
  loop.run();
  return count;
}

export function referenceMmc(lambda: number, mu: number, servers: number, customers: number, seed: string): number {
  const loop = new PlainLoop();
  const arrivals = seedrandom.xor4096(`${seed}.arrivals`);
  const service = seedrandom.xor4096(`${seed}.service`);
  let busy = 0;
  const queue: number[] = [];
  let served = 0;
  const start = () => {
    busy++;
    loop.at(loop.now + exp(service, 1e6 / mu), finish);
  };
  const finish = () => {
    busy--;
    served++;
    if (queue.length > 0) {
      queue.shift();
      start();
    }
  };
  let arrived = 0;
  const arrive = () => {
    if (busy < servers && queue.length === 0) start();
    else queue.push(loop.now);
    if (++arrived < customers) loop.at(loop.now + exp(arrivals, 1e6 / lambda), arrive);
  };
  loop.at(exp(arrivals, 1e6 / lambda), arrive);
  loop.run();
  return served;
}

/** Threads alternating a compute and a sleep, each its own CPU: two timeouts per operation. */
export function referenceCpu(threads: number, operations: number, seed: string): number {
  const loop = new PlainLoop();
  const rng = seedrandom.xor4096(seed);
  let count = 0;
  const compute = () => loop.at(loop.now + exp(rng, 1_000), computed);
  const computed = () => {
    count++;
    loop.at(loop.now + exp(rng, 1_000), slept);
  };
  const slept = () => {
    if (count < operations) compute();
  };
  for (let t = 0; t < threads; t++) compute();
  loop.run();
  return count;
}
