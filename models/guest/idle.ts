import { Interrupt, Priority, type Process, type Proc } from '../../sim/index.ts';
import type { GuestKernel } from './kernel.ts';

/**
 * The idle loop of an online vCPU (cpu_startup_entry -> do_idle): the vCPU halts, and without
 * NOHZ idle every timer tick (HZ per second) is a VM exit to the host and a re-entry
 * (platform.idle_tick_exit). It runs at the engine's idle class, so ticks are taken only while
 * the vCPU has nothing else to do, and cost the host CPU time while other vCPUs accept memory
 * ([slow-many-vcpu-td-boot]: idle APs' HLT exits load the host and slow each fault).
 */
export class IdleLoop {
  private readonly threads: { p: Process<void>; sleeping: boolean }[] = [];
  ticks = 0;
  /** Ticks that re-armed the TSC deadline with an exit (tick_rearm_exit). */
  rearmExits = 0;
  /** TICK_NSEC. */
  private readonly periodNs: number;
  /**
   * Where the guest's tick grid lies (virtual ns): every CPU's tick fires at origin + n x period
   * (+ its skew), as tick_sched timers are set on the jiffies grid and forwarded past overruns
   * (hrtimer_forward): ticks are aligned across vCPUs, not counted from when each came online.
   * The grid's phase against the boot's events is what differs from one real boot to the next:
   * drawn from the VM's own stream, or 0 without variation.
   */
  private readonly originNs: number;

  constructor(readonly kernel: GuestKernel) {
    const hz = kernel.config.hz;
    this.periodNs = hz > 0 ? Math.round(1e9 / hz) : 0;
    const phase = kernel.config.variation && this.periodNs > 0 ? Math.floor(kernel.rng('tick.phase').uniform(0, this.periodNs)) : 0;
    this.originNs = kernel.sim.now + phase;
  }

  /** The first tick of vCPU `vcpu` strictly after now ([linux:kernel/time/tick-sched.c] tick_setup_sched_timer). */
  nextTickNs(vcpu: number): number {
    const period = this.periodNs;
    const k = this.kernel;
    const skew = k.config.skewTick ? Math.floor(((period / 2) / k.config.vcpus) * vcpu) : 0;
    const base = this.originNs + skew;
    const now = k.sim.now;
    if (now < base) return base;
    return base + (Math.floor((now - base) / period) + 1) * period;
  }

  /**
   * The tick is periodic until the clocksource is rated good enough for high-resolution and
   * one-shot mode (clocksource_done_booting(), an fs_initcall): each CPU then switches at its
   * next tick (tick_check_oneshot_change() -> tick_nohz_switch_to_nohz() / hrtimer_switch_to_hres()
   * [linux:kernel/time/tick-sched.c]), and with NOHZ idle the tick stops while the CPU idles.
   */
  private oneshot = false;

  /** clocksource_done_booting(): from now on a NOHZ-idle vCPU stops its tick after the next one. */
  clocksourceDoneBooting(): void {
    this.oneshot = true;
  }

  /** The vCPU came online: start its idle thread (none once NOHZ idle has stopped the tick). */
  start(vcpu: number): void {
    const k = this.kernel;
    if ((k.config.nohzIdle && this.oneshot) || k.config.hz <= 0) return;
    const state = { p: null as unknown as Process<void>, sleeping: false };
    state.p = k.spawn(this.loop(vcpu, state), `swapper/${vcpu}`, vcpu, { priority: Priority.Idle, daemon: true });
    this.threads.push(state);
  }

  private *loop(vcpu: number, state: { sleeping: boolean }): Proc<void> {
    const k = this.kernel;
    try {
      while (!k.stopping) {
        state.sleeping = true;
        yield k.sim.sleep(this.nextTickNs(vcpu) - k.sim.now);
        state.sleeping = false;
        if (k.stopping) break;
        // The tick runs on the vCPU (only when nothing else wants it), re-arms the TSC deadline
        // (an exit of its own on TDX and SNP), then HLT exits again.
        yield k.sim.compute(k.costs.idleTickNs);
        if (k.config.tickRearmExit) {
          yield k.sim.compute(k.costs.msrExceptionNs);
          yield* k.platform.tsc_deadline_exit(vcpu);
          this.rearmExits++;
        }
        yield* k.platform.idle_tick_exit(vcpu);
        this.ticks++;
        // This tick switched the CPU to one-shot mode: idle with NOHZ, it ticks no more.
        if (k.config.nohzIdle && this.oneshot) break;
      }
    } catch (e) {
      if (!(e instanceof Interrupt)) throw e;
    }
  }

  /** Shutdown: wake the sleeping idle threads so they exit; the others exit after their tick. */
  stop(): void {
    for (const t of this.threads) if (t.sleeping && t.p.state !== 'done') t.p.interrupt('shutdown');
  }
}
