import { Priority, type Process, type Proc } from '../../sim/index.ts';
import type { GuestKernel } from './kernel.ts';

/**
 * The background acceptor: option 3 of the unaccepted-memory changelog ([unaccepted-v7-2022-06],
 * [unaccepted-v14-2023-06]; never merged:
 * "threads also steal CPU cycles and memory bandwidth from the user's workload"). Kernel threads
 * at the background scheduling class loop try_to_accept_memory_one() over the zones, highest
 * first, optionally pausing `paceNs` between blocks. Each runs only on idle time of its vCPU,
 * but once inside accept_memory() it keeps the vCPU with interrupts off until the block is done.
 */
export interface BackgroundAcceptorConfig {
  threads: number;
  /** Sleep between two blocks, ns (0: as fast as idle time allows). */
  paceNs: number;
}

export class BackgroundAcceptor {
  running = 0;
  readonly threads: Process<void>[] = [];

  constructor(
    readonly kernel: GuestKernel,
    readonly config: BackgroundAcceptorConfig,
  ) {}

  /** Starts the threads, spread over the vCPUs from the last one down (away from the BSP). */
  start(): void {
    const k = this.kernel;
    const n = k.vcpus.length;
    for (let i = 0; i < this.config.threads; i++) {
      const vcpu = n - 1 - (i % n);
      this.running++;
      this.threads.push(k.spawn(this.loop(i), `kacceptd/${i}`, vcpu, { priority: Priority.Background, daemon: true }));
    }
  }

  /** Compute time of the threads outside arch_accept_memory() (their accept time is in acceptNsBy). */
  cpuNs(): number {
    const total = this.threads.reduce((n, p) => n + p.cpuTimeNs, 0);
    return total - (this.kernel.metrics.acceptComputeNsBy.get('background') ?? 0);
  }

  private *loop(index: number): Proc<void> {
    const k = this.kernel;
    const sim = k.sim;
    const id = sim.opBegin('kacceptd', { index });
    for (;;) {
      if (k.stopping) break;
      const zone = k.allocator.highestZoneWithUnaccepted();
      if (zone === null) break;
      if (yield* k.allocator.try_to_accept_memory_one(zone, 'background')) k.metrics.backgroundBlocks++;
      yield* k.cond_resched();
      if (this.config.paceNs > 0) yield sim.sleep(this.config.paceNs);
    }
    sim.opEnd(id);
    this.running--;
  }
}
