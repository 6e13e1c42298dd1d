import { Cpu, MiB, Sim, type Attrs, type Proc, type Process, type SimObserver } from '../../../sim/index.ts';
import type { Platform } from '../../../models/platform.ts';

/** One recorded op or instant: name, actor (service or pseudo-actor), attributes. */
export interface Logged {
  kind: 'op' | 'instant';
  name: string;
  actor: string;
  attrs: Attrs;
  at: number;
  end?: number;
  endAttrs?: Attrs;
}

/** A minimal observer that logs ops and instants in order (enough to read a sequence of spans). */
export class RecordingObserver implements SimObserver {
  readonly log: Logged[] = [];
  private readonly open = new Map<number, Logged>();
  private next = 1;
  constructor(private readonly sim: Sim) {}
  processStart(): void {}
  processEnd(): void {}
  opBegin(p: Process<any> | null, name: string, attrs: Attrs | undefined, _link: number, actor: string | undefined): number {
    const entry: Logged = { kind: 'op', name, actor: actor ?? p?.service ?? 'engine', attrs: attrs ?? {}, at: this.sim.now };
    this.log.push(entry);
    const id = this.next++;
    this.open.set(id, entry);
    return id;
  }
  opEnd(id: number, attrs: Attrs | undefined): void {
    const e = this.open.get(id);
    if (e === undefined) return;
    e.end = this.sim.now;
    e.endAttrs = attrs ?? {};
    this.open.delete(id);
  }
  lockWait(): void {}
  lockAcquire(): void {}
  lockRelease(): void {}
  lockBusy(): void {}
  instant(p: Process<any> | null, name: string, attrs: Attrs | undefined): void {
    this.log.push({ kind: 'instant', name, actor: p?.service ?? 'engine', attrs: attrs ?? {}, at: this.sim.now });
  }
}

/** vCPUs of a test guest. */
export function makeVcpus(sim: Sim, n: number): Cpu[] {
  return Array.from({ length: n }, (_, i) => new Cpu(sim, `vcpu${i}`));
}

/**
 * Drives vCPU threads that accept their share of [0, bytes) in `chunk` pieces through
 * platform.arch_accept_memory (with interrupts off, as accept_memory() calls it), the way the
 * guest's eager accept splits memory between CPUs. Returns the time the last one finished.
 */
export function acceptInParallel(sim: Sim, platform: Platform, cpus: Cpu[], bytes: number, chunk = 4 * MiB): number {
  const per = bytes / cpus.length;
  let last = 0;
  cpus.forEach((cpu, i) => {
    sim.spawn((function* (): Proc<void> {
      sim.localIrqDisable();
      for (let a = i * per; a < (i + 1) * per; a += chunk) {
        yield* platform.arch_accept_memory(i, a, Math.min(a + chunk, (i + 1) * per), 'runtime');
      }
      sim.localIrqEnable();
      last = Math.max(last, sim.now);
    })(), { name: `vcpu${i}`, cpu, service: 'guest' });
  });
  sim.run();
  platform.checkInvariants();
  return last;
}

/** Runs one guest thread on vCPU 0 that calls body, then checks invariants. */
export function onVcpu0(sim: Sim, platform: Platform, cpus: Cpu[], body: () => Proc<void>): void {
  sim.spawn((function* (): Proc<void> {
    yield* body();
  })(), { name: 'vcpu0', cpu: cpus[0]!, service: 'guest' });
  sim.run();
}
