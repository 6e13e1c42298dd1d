import type { Sim } from './sim.ts';
import type { Blocker } from './process.ts';
import type { Cpu } from './cpu.ts';
import type { Duration } from './clock.ts';
import { LockStats } from './lock_stats.ts';
import { assert } from './assert.ts';

export interface HostCpusOptions {
  /** Host CPUs (hardware threads) in the pool. */
  cpus: number;
  /** Hardware threads per core: 2 with SMT. Host CPU i is on core floor(i / threadsPerCore). Default 1. */
  threadsPerCore?: 1 | 2;
  /** Sockets; the cores are split evenly between them, in order. Default 1. */
  sockets?: number;
  /** Time slice of a vCPU thread on a host CPU, ns. Default: defaultHostSliceNs(cpus). */
  sliceNs?: Duration;
}

export interface HostCpuAccounting {
  busyNs: number;
  idleNs: number;
}

export interface HostCpusAccounting extends HostCpuAccounting {
  /** One entry per host CPU; the sums are busyNs and idleNs. */
  perCpu: HostCpuAccounting[];
}

/**
 * EEVDF's base slice on a host with `cpus` CPUs: sysctl_sched_base_slice, 0.75 ms, scaled by
 * 1 + ilog2(min(cpus, 8)) under the default SCHED_TUNABLESCALING_LOG ([linux:kernel/sched/fair.c],
 * get_update_sysctl_factor()): 0.75 ms on 1 CPU, 1.5 ms on 2 or 3, 2.25 ms on 4 to 7, 3 ms on
 * 8 or more.
 */
export function defaultHostSliceNs(cpus: number): Duration {
  return 750_000 * (1 + Math.floor(Math.log2(Math.min(cpus, 8))));
}

/**
 * The host CPUs that vCPU threads (and host-only threads) run on. A `Cpu` created with
 * `host: pool` must hold one of these whenever it is not idle: running guest code, spinning,
 * stalled in a VM exit; it asks for one when it goes from idle to running a thread and gives it
 * back the moment it goes idle (the vCPU halts). A Cpu waiting for a host CPU runs nothing; its
 * time is accounted as `steal`, the steal time the guest sees.
 *
 * Policy, and why:
 * - One global FIFO run queue of waiting Cpus: the host's load balancing is taken as perfect, a
 *   waiting vCPU thread takes any host CPU that is free. Real per-CPU run queues can leave a CPU
 *   idle while a thread waits elsewhere, until the next balance; that is not modelled.
 * - No wake-up preemption: every vCPU thread is an equal SCHED_NORMAL entity, and EEVDF lets a
 *   waking task preempt only when its deadline is earlier than the running task's; we ignore
 *   that case, so a waking vCPU waits for a slice to end or a host CPU to be given back.
 * - Time slices: a holder's slices run back to back from the moment it got its host CPU; with
 *   nobody waiting the next slice just begins (EEVDF's update_deadline()). At the end of a
 *   slice, if a Cpu was already waiting before that instant, the holder is preempted if its
 *   guest Cpu runs guest code: a compute burst, or spinning on a guest lock (to the host both
 *   are guest code; see below). The burst stops, the Cpu goes to the back of the queue with its
 *   owner thread still its owner, and the burst (or the spin) resumes when it gets a host CPU
 *   again. "Already waiting before" keeps a Cpu preempted at t from preempting another holder
 *   whose slice also ends at t: three vCPUs on two host CPUs rotate one at a time instead of
 *   all changing places at once.
 * - A holder that is stalled (inside a VM exit: host work) at the end of its slice is not
 *   preempted there. It gives its host CPU up at its next compute burst start if one of its
 *   slices ended while the first waiter was waiting (need_resched, honoured when KVM is about to
 *   re-enter the guest: xfer_to_guest_mode_handle_work()). Exits are short and dominated by
 *   non-preemptible SEAMCALL/VMRUN sections. A holder driving a memory transfer counts as
 *   stalled. Spinning is preempted at slice ends, not spared like a stall: a vCPU spinning on
 *   a guest spinlock whose holder's vCPU was preempted would otherwise keep its host CPU until
 *   the holder runs, and with every host CPU held by such spinners nobody ever would (lock-holder
 *   preemption turned into a deadlock). Pause-loop exiting (a spinning vCPU yielding early) is
 *   not modelled: a spinner burns its slice.
 * - Choice of host CPU on a grant: the one it last ran on if free; else a free CPU whose SMT
 *   sibling is free too (select_idle_core()); else the lowest-numbered free CPU.
 *
 * The pool has no events of its own: while a Cpu waits, each holder's compute burst is cut at its
 * next slice end (the holder's own burst event; a spinning holder gets one event per slice), so
 * a grant with a free host CPU costs no event and a pool with enough CPUs changes nothing.
 * Deterministic: arrays in index order and a FIFO.
 */
export class HostCpus implements Blocker {
  readonly cpus: number;
  readonly threadsPerCore: 1 | 2;
  readonly sockets: number;
  readonly coresPerSocket: number;
  readonly sliceNs: Duration;
  private readonly lockStats: LockStats;
  /** Immediate grants not yet recorded as waits of 0 in lockStats (one histogram call per read, not per grant). */
  private immediateGrants = 0;
  /** Grants on a host CPU other than the one the Cpu last ran on. */
  migrations = 0;
  /** Holders that gave their host CPU up to a waiter (at a slice end or at their next burst). */
  preemptions = 0;

  private readonly holders: (Cpu | null)[];
  /** When each host CPU was granted to its holder (its slices count from there). */
  private readonly since: Float64Array;
  private readonly busySpent: Float64Array;
  private free: number;
  private readonly queue: Cpu[] = [];
  private readonly start: number;

  constructor(
    readonly sim: Sim,
    readonly name: string,
    options: HostCpusOptions,
  ) {
    const { cpus } = options;
    this.threadsPerCore = options.threadsPerCore ?? 1;
    this.sockets = options.sockets ?? 1;
    assert(Number.isSafeInteger(cpus) && cpus > 0, 'host CPUs: cpus must be a positive integer', { name, cpus });
    assert(this.threadsPerCore === 1 || this.threadsPerCore === 2, 'host CPUs: threadsPerCore must be 1 or 2', { name, threadsPerCore: this.threadsPerCore });
    assert(cpus % this.threadsPerCore === 0, 'host CPUs: cpus must be a multiple of threadsPerCore', { name, cpus });
    const cores = cpus / this.threadsPerCore;
    assert(Number.isSafeInteger(this.sockets) && this.sockets > 0 && cores % this.sockets === 0,
      'host CPUs: sockets must divide the cores evenly', { name, cores, sockets: this.sockets });
    this.cpus = cpus;
    this.coresPerSocket = cores / this.sockets;
    this.sliceNs = options.sliceNs ?? defaultHostSliceNs(cpus);
    assert(Number.isSafeInteger(this.sliceNs) && this.sliceNs > 0, 'host CPUs: sliceNs must be a positive integer', { name, sliceNs: this.sliceNs });
    this.holders = new Array<Cpu | null>(cpus).fill(null);
    this.since = new Float64Array(cpus).fill(sim.now);
    this.busySpent = new Float64Array(cpus);
    this.free = cpus;
    this.start = sim.now;
    this.lockStats = new LockStats(name);
    sim.blockers.push(this);
  }

  // ---- Topology ------------------------------------------------------------------------------

  coreOf(cpu: number): number {
    return Math.floor(cpu / this.threadsPerCore);
  }

  socketOf(cpu: number): number {
    return Math.floor(this.coreOf(cpu) / this.coresPerSocket);
  }

  /** The other hardware thread of cpu's core, or -1 without SMT. */
  siblingOf(cpu: number): number {
    return this.threadsPerCore === 2 ? cpu ^ 1 : -1;
  }

  // ---- State ---------------------------------------------------------------------------------

  /** Host CPUs held. */
  get inUse(): number {
    return this.cpus - this.free;
  }

  /** Cpus in the run queue. */
  get waiting(): number {
    return this.queue.length;
  }

  /** The Cpu holding host CPU i, or null. */
  holderOf(i: number): Cpu | null {
    return this.holders[i] ?? null;
  }

  /**
   * As for a lock: acquisitions are grants (immediate or after a wait), contended the grants
   * that waited in the run queue, `wait` the time each grant waited (0 when immediate). Hold
   * times are not recorded (accounting() has the time held).
   */
  get stats(): LockStats {
    if (this.immediateGrants > 0) {
      this.lockStats.wait.record(0, this.immediateGrants);
      this.immediateGrants = 0;
    }
    return this.lockStats;
  }

  /** Total time Cpus waited in the run queue, ns. */
  waitNs(): number {
    return this.lockStats.wait.sum;
  }

  /** Host CPU time held over the pool's life, ns. */
  busyNs(): number {
    return this.accounting().busyNs;
  }

  /**
   * Held (busy) and free (idle) time per host CPU since the pool was made: busy is summed grant
   * by grant, idle is the rest, so busy + idle = cpus x elapsed.
   */
  accounting(): HostCpusAccounting {
    const now = this.sim.now;
    const elapsed = now - this.start;
    const perCpu: HostCpuAccounting[] = [];
    let busyNs = 0;
    let idleNs = 0;
    for (let i = 0; i < this.cpus; i++) {
      const held = this.busySpent[i]! + (this.holders[i] !== null ? now - this.since[i]! : 0);
      const c = { busyNs: held, idleNs: elapsed - held };
      busyNs += c.busyNs;
      idleNs += c.idleNs;
      perCpu.push(c);
    }
    return { busyNs, idleNs, perCpu };
  }

  /** Nanoseconds since the pool was made (the `elapsed` of busy + idle = cpus x elapsed). */
  elapsedNs(): number {
    return this.sim.now - this.start;
  }

  // ---- Called by Cpu -------------------------------------------------------------------------

  /**
   * cpu goes from idle to running a thread. With a free host CPU and nobody queued it is granted
   * at once (cpu.hostGranted runs before this returns); otherwise cpu joins the run queue.
   */
  request(cpu: Cpu): void {
    assert(cpu.hostCpu < 0, 'a Cpu asked for a second host CPU', cpu);
    if (this.free > 0) {
      assert(this.queue.length === 0, 'host CPUs: a CPU is free while Cpus wait', this);
      this.grant(this.choose(cpu.lastHostCpu), cpu, 0);
      return;
    }
    this.enqueue(cpu);
  }

  /** cpu went idle: host CPU i (-1: none yet) goes to the first waiter, or cpu leaves the run queue. */
  release(cpu: Cpu, i: number): void {
    if (i < 0) {
      const at = this.queue.indexOf(cpu);
      assert(at >= 0, 'host CPUs: releasing a Cpu that neither holds nor waits', cpu);
      this.queue.splice(at, 1);
      return;
    }
    assert(this.holders[i] === cpu, 'host CPUs: released by a Cpu that does not hold it', cpu);
    this.vacate(i);
    this.handOver(i);
  }

  /**
   * Should cpu, whose owner is about to compute (a burst starts, or its burst reached a slice
   * end), give its host CPU up? Yes when a Cpu waits and one of cpu's slices ended after the
   * first waiter began to wait.
   */
  mustYield(cpu: Cpu): boolean {
    if (this.queue.length === 0) return false;
    const g = this.since[cpu.hostCpu]!;
    const slices = Math.floor((this.sim.now - g) / this.sliceNs);
    return slices >= 1 && g + slices * this.sliceNs > this.queue[0]!.hostWaitSince;
  }

  /**
   * Every Cpu of the pool that has an owner can only spin, and the only events left are their
   * slice ends: preempting them would rotate spinners forever (a guest deadlock on spin waits,
   * which without a pool the engine reports when its queue runs dry).
   */
  onlySpinnersLeft(): boolean {
    let pending = 0;
    for (const c of this.holders) {
      if (c === null) continue;
      if (!c.onlySpins()) return false;
      if (c.spinSliceEndPending()) pending++;
    }
    for (const c of this.queue) {
      if (!c.onlySpins()) return false;
      if (c.spinSliceEndPending()) pending++;
    }
    return this.sim.queue.size === pending;
  }

  /** The end of cpu's current slice: the first slice boundary after now. */
  sliceEndOf(cpu: Cpu): number {
    const g = this.since[cpu.hostCpu]!;
    return g + this.sliceNs * (Math.floor((this.sim.now - g) / this.sliceNs) + 1);
  }

  /** cpu gives its host CPU to the first waiter and goes to the back of the run queue. */
  preempt(cpu: Cpu): void {
    const i = cpu.hostCpu;
    assert(this.holders[i] === cpu && this.queue.length > 0, 'host CPUs: preempting without a waiter', cpu);
    this.preemptions++;
    this.vacate(i);
    cpu.hostPreempted();
    this.enqueue(cpu); // behind every waiter, so the hand-over below goes to another Cpu
    this.handOver(i);
  }

  // ---- Internals -----------------------------------------------------------------------------

  /** Host CPU i's name in traces: the pool's name and the CPU's number, e.g. `host_cpus/cpu3`. */
  cpuName(i: number): string {
    return `${this.name}/cpu${i}`;
  }

  /** The host CPU for a grant: the last one if free, else an idle core, else the lowest free. */
  private choose(last: number): number {
    const holders = this.holders;
    if (last >= 0 && holders[last] === null) return last;
    let firstFree = -1;
    for (let i = 0; i < this.cpus; i++) {
      if (holders[i] !== null) continue;
      const sibling = this.siblingOf(i);
      if (sibling < 0 || holders[sibling] === null) return i;
      if (firstFree < 0) firstFree = i;
    }
    assert(firstFree >= 0, 'host CPUs: no free CPU to choose', this);
    return firstFree;
  }

  private grant(i: number, cpu: Cpu, waited: number): void {
    this.since[i] = this.sim.now;
    this.holders[i] = cpu;
    this.free--;
    this.lockStats.acquisitions++;
    if (waited > 0) this.lockStats.wait.record(waited);
    else this.immediateGrants++;
    const from = cpu.lastHostCpu;
    if (from >= 0 && from !== i) this.migrations++;
    cpu.hostGranted(i, from);
  }

  private vacate(i: number): void {
    const o = this.sim.observer;
    // The stretch ends: the host CPU's lane in a trace shows which vCPU ran on it, and when.
    if (o !== null && o.cpuRun !== undefined) o.cpuRun(this.cpuName(i), this.holders[i]!.name, this.since[i]!, this.sim.now);
    this.busySpent[i]! += this.sim.now - this.since[i]!;
    this.holders[i] = null;
    this.free++;
  }

  /** Host CPU i was given back: the first waiter takes it. */
  private handOver(i: number): void {
    if (this.queue.length === 0) return;
    const next = this.queue.shift()!;
    this.grant(i, next, this.sim.now - next.hostWaitSince);
  }

  private enqueue(cpu: Cpu): void {
    this.lockStats.contended++;
    this.queue.push(cpu);
    if (this.queue.length > 1) return;
    // Someone waits now: bursts that started with nobody waiting end at their slice end.
    for (const holder of this.holders) if (holder !== null) holder.hostSliceCut();
  }

  /** Processes never block on the pool itself (their Cpu waits), so there is no wait to cancel. */
  cancelWait(): void {}

  holderNames(): string[] {
    const out: string[] = [];
    for (const c of this.holders) if (c !== null) out.push(c.name);
    return out;
  }

  describe(): string {
    const held: string[] = [];
    this.holders.forEach((c, i) => {
      if (c !== null) held.push(`${c.name} on ${i}`);
    });
    const waiting = this.queue.map((c) => `${c.name} since t=${c.hostWaitSince}ns`);
    return `host CPUs ${this.name} (${this.inUse}/${this.cpus} in use${held.length > 0 ? `: ${held.join(', ')}` : ''}; `
      + `${waiting.length} waiting${waiting.length > 0 ? `: ${waiting.join(', ')}` : ''})`;
  }
}
