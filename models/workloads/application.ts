import { assert, type Proc } from '../../sim/index.ts';
import { PAGE_SIZE } from '../guest/constants.ts';
import type { GuestKernel } from '../guest/kernel.ts';
import type { Extents } from '../guest/page_alloc.ts';

/**
 * The application phase: `threads` threads that allocate and touch memory (anonymous page faults)
 * at a given rate, either growing to `bytes` in total (`allocate`) or churning through `bytes`
 * while each keeps at most `workingSetBytes` (`churn`: the oldest chunk is freed first).
 * Allocation latency of every page goes into the guest's latency histogram.
 */
export const APPLICATION_PATTERNS = ['allocate', 'churn'] as const;
export type ApplicationPattern = (typeof APPLICATION_PATTERNS)[number];
/** Allocation steps arrive with exponential gaps (independent requests) or evenly spaced. */
export const APPLICATION_ARRIVALS = ['poisson', 'paced'] as const;

export interface ApplicationConfig {
  threads: number;
  /** Total bytes allocated by all threads together. */
  bytes: number;
  /** Allocation rate of each thread, bytes/s (0: as fast as it can). */
  rateBytesPerSec: number;
  /**
   * Pages one allocation step asks for (the aggregation unit of the model). 1 is the per-page
   * path; larger values give the same page-allocator behaviour with fewer engine events.
   */
  chunkPages: number;
  pattern: ApplicationPattern;
  /** `churn`: bytes each thread keeps before freeing its oldest chunk. */
  workingSetBytes: number;
  /**
   * How allocations arrive at the given rate: `paced` (evenly spaced) or `poisson` (exponential
   * gaps with the same mean, as requests arriving independently do; drawn from the stream
   * `guest.app.<thread>.arrivals`).
   */
  arrivals: (typeof APPLICATION_ARRIVALS)[number];
}

export function defaultApplicationConfig(overrides: Partial<ApplicationConfig> = {}): ApplicationConfig {
  return { threads: 4, bytes: 1024 * 1024 * 1024, rateBytesPerSec: 0, chunkPages: 64, pattern: 'allocate', workingSetBytes: 256 * 1024 * 1024, arrivals: 'paced', ...overrides };
}

/** What the application phase leaves behind. */
export interface ApplicationResult {
  startNs: number;
  endNs: number;
  /** Pages still held by the threads (for the end-of-run balance). */
  heldPages: number;
  allocatedBytes: number;
}

/** Runs the application phase from the calling (kernel_init) thread and waits for its threads. */
export function* applicationPhase(k: GuestKernel, config: ApplicationConfig): Proc<ApplicationResult> {
  assert(config.threads >= 1 && Number.isInteger(config.threads), 'application threads must be a positive integer', config.threads);
  assert(config.chunkPages >= 1 && Number.isInteger(config.chunkPages), 'chunkPages must be a positive integer', config.chunkPages);
  const sim = k.sim;
  const startNs = sim.now;
  const id = sim.opBegin('application', { 'cvmsim.level': 'phase', threads: config.threads, bytes: config.bytes, pattern: config.pattern });
  const perThreadPages = Math.floor(config.bytes / PAGE_SIZE / config.threads);
  const results = { heldPages: 0, allocatedPages: 0 };
  const threads = [];
  for (let i = 0; i < config.threads; i++) {
    const vcpu = i % k.vcpus.length;
    threads.push(k.spawn(appThread(k, config, i, perThreadPages, results), `app/${i}`, vcpu));
  }
  for (const t of threads) yield t.join();
  sim.opEnd(id);
  return { startNs, endNs: sim.now, heldPages: results.heldPages, allocatedBytes: results.allocatedPages * PAGE_SIZE };
}

function* appThread(
  k: GuestKernel,
  config: ApplicationConfig,
  index: number,
  pages: number,
  results: { heldPages: number; allocatedPages: number },
): Proc<void> {
  const sim = k.sim;
  const vcpu = index % k.vcpus.length;
  const arrivals = config.arrivals === 'poisson' ? k.rng(`guest.app.${index}.arrivals`) : null;
  const t0 = sim.now;
  let due = t0;
  const held: Extents[] = [];
  let heldPages = 0;
  let done = 0;
  const workingSetPages = Math.floor(config.workingSetBytes / PAGE_SIZE);
  while (done < pages) {
    const want = Math.min(config.chunkPages, pages - done);
    const out: Extents = [];
    const got = yield* k.allocator.alloc_pages(vcpu, want, out, true);
    if (got > 0) {
      yield* k.touchPages(got);
      held.push(out);
      heldPages += got;
    }
    done += got;
    if (got < want) break; // OOM: the allocation failed; the thread gives up.
    while (config.pattern === 'churn' && heldPages > workingSetPages && held.length > 1) {
      const oldest = held.shift()!;
      yield* k.allocator.free_pages(vcpu, oldest);
      heldPages -= countPages(oldest);
    }
    if (config.rateBytesPerSec > 0) {
      if (arrivals === null) due = t0 + Math.round(((done * PAGE_SIZE) / config.rateBytesPerSec) * 1e9);
      else due += Math.round(arrivals.exponential(((got * PAGE_SIZE) / config.rateBytesPerSec) * 1e9));
      if (due > sim.now) yield sim.sleep(due - sim.now);
    }
  }
  results.heldPages += heldPages;
  results.allocatedPages += done;
}

export function countPages(extents: Extents): number {
  let n = 0;
  for (let i = 1; i < extents.length; i += 2) n += extents[i]!;
  return n;
}
