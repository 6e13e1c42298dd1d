import { MiB, Sim, type Attrs, type Proc, type Process, type SimObserver } from '../../../sim/index.ts';
import type { GuestPlatform } from '../../../models/guest/platform.ts';
import { Host, type HostConfig } from '../../../models/host/host.ts';
import type { Td } from '../../../models/tdx/td.ts';
import { Vm, type VmConfig } from '../../../models/vm/vm.ts';
import { finishHost } from '../../../experiments/wiring.ts';

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

/** A bare VM's test options: its size and vCPUs, the host's settings, the VM's own. */
export type TestVmOptions = Omit<VmConfig, 'guest' | 'bare'> & Partial<Omit<HostConfig, 'technology'>> & {
  gpaBytes: number;
  vcpus: number;
};

/**
 * A host with one bare VM (no guest kernel: the test's threads are its vCPUs' guest code), the
 * guest platform the test calls, and the VM's metrics with the VM prefix taken off
 * (`kvm.exits.EPT_VIOLATION`, `tdx.busy.total`) beside the host's (`host.cpus.waits`).
 */
export class TestVm implements GuestPlatform {
  readonly host: Host;
  readonly vm: Vm;
  constructor(sim: Sim, technology: 'tdx' | 'snp', options: TestVmOptions) {
    const { gpaBytes, vcpus, cpus, memoryBytes, memoryBandwidthBytesPerSec, clearBytesPerSec, tdxModule, tdxCosts, snpCosts, cacheLines, sockets, snpDirectMapSplit, ...vm } = options;
    this.host = new Host(sim, {
      technology, cpus: cpus ?? vcpus, memoryBytes: memoryBytes ?? 2 * gpaBytes + 256 * MiB,
      ...defined({ memoryBandwidthBytesPerSec, clearBytesPerSec, tdxModule, tdxCosts, snpCosts, cacheLines, sockets, snpDirectMapSplit }),
    });
    this.vm = new Vm(sim, this.host, { ...vm, bare: { vcpus, gpaBytes } });
  }
  get kind() {
    return this.vm.kind;
  }
  get vcpus() {
    return this.vm.vcpus;
  }
  get memoryBandwidth() {
    return this.vm.memoryBandwidth;
  }
  /** The TD's state in the module (TDX). */
  get td(): Td {
    return this.vm.kvm.tdx!.td;
  }
  arch_accept_memory(vcpu: number, start: number, end: number, phase: 'early' | 'runtime'): Proc<void> {
    return this.vm.arch_accept_memory(vcpu, start, end, phase);
  }
  idle_tick_exit(vcpu: number): Proc<void> {
    return this.vm.idle_tick_exit(vcpu);
  }
  tsc_deadline_exit(vcpu: number): Proc<void> {
    return this.vm.tsc_deadline_exit(vcpu);
  }
  checkInvariants(): void {
    this.vm.checkInvariants();
    this.host.checkInvariants();
  }
  metrics(): Record<string, number> {
    const all = finishHost(this.host, [this.vm]);
    const out: Record<string, number> = {};
    for (const [k, v] of Object.entries(all)) out[k.startsWith('vm1.') ? k.slice(4) : k] = v;
    return out;
  }
}

function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export function tdxVm(sim: Sim, options: TestVmOptions): TestVm {
  return new TestVm(sim, 'tdx', options);
}

export function snpVm(sim: Sim, options: TestVmOptions): TestVm {
  return new TestVm(sim, 'snp', options);
}

/**
 * Drives the VM's vCPU threads, each accepting its share of [0, bytes) in `chunk` pieces through
 * arch_accept_memory (with interrupts off, as accept_memory() calls it), the way the guest's
 * eager accept splits memory between CPUs. Returns the time the last one finished.
 */
export function acceptInParallel(sim: Sim, t: TestVm, bytes: number, chunk = 4 * MiB): number {
  const cpus = t.vcpus;
  const per = bytes / cpus.length;
  let last = 0;
  cpus.forEach((cpu, i) => {
    sim.spawn((function* (): Proc<void> {
      sim.localIrqDisable();
      for (let a = i * per; a < (i + 1) * per; a += chunk) {
        yield* t.arch_accept_memory(i, a, Math.min(a + chunk, (i + 1) * per), 'runtime');
      }
      sim.localIrqEnable();
      last = Math.max(last, sim.now);
    })(), { name: `vcpu${i}`, cpu, service: 'guest' });
  });
  sim.run();
  t.checkInvariants();
  return last;
}

/** Runs one guest thread on vCPU 0 that calls body. */
export function onVcpu0(sim: Sim, t: TestVm, body: () => Proc<void>): void {
  sim.spawn((function* (): Proc<void> {
    yield* body();
  })(), { name: 'vcpu0', cpu: t.vcpus[0]!, service: 'guest' });
  sim.run();
}
