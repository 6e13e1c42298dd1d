import type { Sim } from './sim.ts';
import type { Duration } from './clock.ts';
import { assert } from './assert.ts';

/** What moving a cache line from the CPU that wrote it last costs the CPU that wants it, ns. */
export interface CacheLineCosts {
  /** Owner and requester on one socket (through the shared LLC / mesh). */
  sameSocketNs: Duration;
  /** Owner on another socket (through the socket interconnect). */
  crossSocketNs: Duration;
}

export interface CacheLinesOptions extends CacheLineCosts {
  /** Lines in the set (one word each); default 1. */
  lines?: number;
  /** Sockets of the machine; default 1. */
  sockets?: number;
  /** false: no transfers and no waiting for a line; hold times are still returned. Default true. */
  enabled?: boolean;
}

/** No CPU has written the line since it was made: the first touch fetches it from memory, free here. */
const NOBODY = -1;
/** CPUs without a host pool are told apart by their index in sim.cpus, above any host CPU number. */
const HARDWARE_CPU_BASE = 1 << 24;

/**
 * Words that several CPUs update with atomics (lock words, counters), one cache line each. A
 * line is owned by the CPU that wrote it last; a touch from another CPU moves the line (a
 * coherence transfer, more across sockets) and the touching thread stalls for it; the same CPU
 * touching again pays nothing. A line can be in one cache at a time, so transfers of one line
 * queue: a touch waits until the line's earlier transfers and holds are done (`busyUntil`), and a
 * line touched from many CPUs serves at most one transfer per transfer time.
 *
 * The CPU is the one the current thread runs on: a thread's `Cpu` when it is hardware, or the host
 * CPU a vCPU thread holds (sim/host_cpus.ts: `hostCpu`, socket by `socketOf`). A vCPU's line is
 * thus owned by the host CPU under it: two vCPUs taking turns on one host CPU share its cache.
 *
 * Two ways to touch, returning the ns the caller adds to its own stall (no engine event here):
 * - `touch(line, holdNs)`: one atomic (or a lock held `holdNs` with the line); exact.
 * - `beginRun(line, n, holdNs, spanNs)` ... `endRun(line, socket, n)`: `n` touches spread over a
 *   stretch of `spanNs` that a model simulates as one step. Alone (no other CPU has a run open on
 *   the line) it costs what `n` touches in a row cost: one transfer if another CPU owned the line,
 *   then nothing. While other CPUs have runs open, their touches interleave with this one's and
 *   every touch is a transfer (strict alternation: exact for two CPUs at equal rates, an upper
 *   bound for rare touchers), costed by where the other runs are (same socket or not). The run's
 *   transfers and holds are booked on the line's time: when the runs ask for more than the line
 *   can serve, `busyUntil` runs ahead and the runs wait for it.
 * Each touch is a few typed-array reads and writes.
 */
export class CacheLines {
  readonly lines: number;
  readonly sockets: number;
  readonly enabled: boolean;
  readonly sameSocketNs: Duration;
  readonly crossSocketNs: Duration;
  private readonly owner: Int32Array;
  private readonly ownerSocket: Int32Array;
  private readonly busyUntil: Float64Array;
  /** Runs open on each line, per socket: active[line * sockets + socket]. */
  private readonly active: Int32Array;
  /** Transfers per line (metrics by word). */
  readonly transfersByLine: Float64Array;
  /** Transfers in all, those across sockets, and what they and the queueing cost the touching threads. */
  transfers = 0;
  crossSocketTransfers = 0;
  transferNs = 0;
  /** Time touches waited for a line busy with other CPUs' transfers and holds. */
  waitNs = 0;
  /** Touches (every one, transfer or not). */
  touches = 0;
  /** The CPU and socket of the current thread, set by where(). */
  private cpuId = NOBODY;
  private cpuSocket = 0;

  constructor(
    readonly sim: Sim,
    readonly name: string,
    options: CacheLinesOptions,
  ) {
    this.lines = options.lines ?? 1;
    this.sockets = options.sockets ?? 1;
    this.enabled = options.enabled ?? true;
    this.sameSocketNs = options.sameSocketNs;
    this.crossSocketNs = options.crossSocketNs;
    assert(Number.isSafeInteger(this.lines) && this.lines > 0, 'cache lines: lines must be a positive integer', { name, lines: this.lines });
    assert(Number.isSafeInteger(this.sockets) && this.sockets > 0, 'cache lines: sockets must be a positive integer', { name, sockets: this.sockets });
    assert(Number.isSafeInteger(this.sameSocketNs) && this.sameSocketNs >= 0, 'cache lines: sameSocketNs must be a non-negative integer', { name, ns: this.sameSocketNs });
    assert(Number.isSafeInteger(this.crossSocketNs) && this.crossSocketNs >= this.sameSocketNs, 'cache lines: crossSocketNs must be an integer >= sameSocketNs', { name, ns: this.crossSocketNs });
    this.owner = new Int32Array(this.lines).fill(NOBODY);
    this.ownerSocket = new Int32Array(this.lines);
    this.busyUntil = new Float64Array(this.lines);
    this.active = new Int32Array(this.lines * this.sockets);
    this.transfersByLine = new Float64Array(this.lines);
  }

  /** The CPU that wrote `line` last (a host CPU number, or a hardware CPU's id), -1 if none. */
  ownerOf(line = 0): number {
    return this.owner[line]!;
  }

  /** The socket the current thread runs on, to pass back to endRun; -1 when no run can open (disabled, or no CPU yet). */
  currentSocket(): number {
    if (!this.enabled) return -1;
    this.where();
    return this.cpuId === NOBODY ? -1 : this.cpuSocket;
  }

  /**
   * One atomic on `line` by the current thread, which then holds the line `holdNs` (a lock's
   * critical section; 0 for a plain atomic). Returns the ns to stall: the wait for the line, the
   * transfer if another CPU wrote it last, and the hold.
   */
  touch(line = 0, holdNs: Duration = 0): Duration {
    if (!this.enabled) return holdNs;
    this.where();
    this.touches++;
    const me = this.cpuId;
    const now = this.sim.now;
    const owner = this.owner[line]!;
    if (owner === me || me === NOBODY) {
      if (now + holdNs > this.busyUntil[line]!) this.busyUntil[line] = now + holdNs;
      return holdNs;
    }
    const cost = owner === NOBODY ? 0 : this.costFrom(this.ownerSocket[line]!);
    const start = Math.max(now, this.busyUntil[line]!);
    const end = start + cost + holdNs;
    this.busyUntil[line] = end;
    this.waitNs += start - now;
    if (owner !== NOBODY) this.count(line, 1, cost, this.ownerSocket[line] !== this.cpuSocket ? 1 : 0);
    this.owner[line] = me;
    this.ownerSocket[line] = this.cpuSocket;
    return end - now;
  }

  /**
   * `n` touches of `line` by the current thread spread over `spanNs` of its own work (without
   * the lines), each holding it `holdNs`; the run stays open until endRun(line, socket, n), with
   * `socket` = currentSocket() before it, and `n`. Returns the ns to stall (see the class comment).
   */
  beginRun(line: number, n: number, holdNs: Duration, spanNs: Duration): Duration {
    if (!this.enabled || n === 0) return n * holdNs;
    this.where();
    if (this.cpuId === NOBODY) return n * holdNs;
    this.touches += n;
    const me = this.cpuId;
    const s = this.sockets;
    const base = line * s;
    let same = 0;
    let cross = 0;
    for (let k = 0; k < s; k++) {
      const a = this.active[base + k]!;
      if (k === this.cpuSocket) same += a;
      else cross += a;
    }
    this.active[base + this.cpuSocket]!++;
    const owner = this.owner[line]!;
    let transferNs = 0;
    if (same + cross > 0) {
      // Other CPUs' touches interleave with these: every touch moves the line.
      transferNs = Math.round((n * (same * this.sameSocketNs + cross * this.crossSocketNs)) / (same + cross));
      this.count(line, n, transferNs, (n * cross) / (same + cross));
    } else if (owner !== me && owner !== NOBODY) {
      transferNs = this.costFrom(this.ownerSocket[line]!);
      this.count(line, 1, transferNs, this.ownerSocket[line] !== this.cpuSocket ? 1 : 0);
    }
    const lineNs = transferNs + n * holdNs;
    const now = this.sim.now;
    const booked = Math.max(now, this.busyUntil[line]!) + lineNs;
    this.busyUntil[line] = booked;
    // The run cannot end before the line has served it: wait for what the line is behind.
    const wait = Math.max(0, booked - (now + spanNs + lineNs));
    this.waitNs += wait;
    this.owner[line] = me;
    this.ownerSocket[line] = this.cpuSocket;
    return lineNs + wait;
  }

  /** The run of `n` touches on `line` begun on `socket` (currentSocket() before beginRun) is over. */
  endRun(line: number, socket: number, n: number): void {
    if (socket < 0 || n === 0) return;
    const i = line * this.sockets + socket;
    assert(this.active[i]! > 0, 'cache lines: endRun without a run open', { name: this.name, line, socket });
    this.active[i]!--;
  }

  /** Runs open on `line` (all sockets). */
  openRuns(line = 0): number {
    let a = 0;
    for (let k = 0; k < this.sockets; k++) a += this.active[line * this.sockets + k]!;
    return a;
  }

  private costFrom(ownerSocket: number): Duration {
    return ownerSocket === this.cpuSocket ? this.sameSocketNs : this.crossSocketNs;
  }

  private count(line: number, transfers: number, ns: number, cross: number): void {
    this.transfers += transfers;
    this.transfersByLine[line]! += transfers;
    this.crossSocketTransfers += cross;
    this.transferNs += ns;
  }

  /** The current thread's CPU: the host CPU under a vCPU, else the hardware CPU; NOBODY outside a thread or before it has run on one. */
  private where(): void {
    const cpu = this.sim.current?.cpu ?? null;
    if (cpu === null) {
      this.cpuId = NOBODY;
      this.cpuSocket = 0;
      return;
    }
    const host = cpu.host;
    if (host !== null) {
      // A thread's first steps, before its vCPU has asked for a host CPU, run nowhere yet.
      const on = cpu.hostCpu >= 0 ? cpu.hostCpu : cpu.lastHostCpu;
      this.cpuId = on;
      this.cpuSocket = on >= 0 ? host.socketOf(on) : 0;
      assert(this.cpuSocket < this.sockets, 'cache lines: a host CPU on a socket the lines do not know', { name: this.name, socket: this.cpuSocket });
      return;
    }
    this.cpuId = HARDWARE_CPU_BASE + cpu.index;
    this.cpuSocket = 0;
  }

  /** No run is left open. */
  checkInvariants(): void {
    for (let i = 0; i < this.active.length; i++) assert(this.active[i] === 0, 'cache lines: a run left open at the end', { name: this.name, line: Math.floor(i / this.sockets) });
  }
}
