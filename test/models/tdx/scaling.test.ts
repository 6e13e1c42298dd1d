import { describe, expect, it } from 'vitest';
import { MiB, MS, Sim, type Proc } from '../../../sim/index.ts';
import { TDX_COSTS } from '../../../models/tdx/tdx_costs.ts';
import { acceptInParallel, tdxVm, type TestVmOptions } from '../host/fixture.ts';

const BYTES = 64 * MiB;
const PAGES = BYTES / 4096;

function acceptTime(vcpus: number, config: Partial<TestVmOptions>): number {
  const sim = new Sim({ seed: 11 });
  const platform = tdxVm(sim, { gpaBytes: BYTES, vcpus, ...config });
  return acceptInParallel(sim, platform, BYTES);
}

describe('how 4K-only acceptance scales with vCPUs comes out of the host-side locks', () => {
  it('TDX 1.0: AUGs serialise on the exclusive S-EPT tree lock, so 8 vCPUs are barely faster than 4', () => {
    const [t1, t4, t8] = [1, 4, 8].map((n) => acceptTime(n, { tdxModule: '1.0', fidelity: 'per-page' }));
    expect(t1 / t4).toBeLessThan(3.6);
    expect(t4 / t8).toBeLessThan(1.15);
    // The plateau is the lock: at most one AUG body at a time.
    expect(t8).toBeGreaterThanOrEqual(PAGES * TDX_COSTS.augBodyNs);
  });

  it('TDX 1.5: AUGs share the lock, so acceptance scales with vCPUs until something else saturates', () => {
    const [t1, t4, t8] = [1, 4, 8].map((n) => acceptTime(n, { tdxModule: '1.5', fidelity: 'per-page' }));
    expect(t1 / t4).toBeGreaterThan(3.9);
    expect(t4 / t8).toBeGreaterThan(1.95);
  });

  it('host memory bandwidth caps it in the end: on a 4 GB/s socket going from 4 to 8 vCPUs gains little', () => {
    const bandwidth = 4e9;
    const [t4, t8] = [4, 8].map((n) => acceptTime(n, { memoryBandwidthBytesPerSec: bandwidth }));
    expect(t4 / t8).toBeLessThan(1.25);
    // Each 4K page is written twice: cleared by the host, zeroed by the module with the TD key.
    expect(t8).toBeGreaterThanOrEqual((2 * BYTES) / bandwidth * 1e9);
  });

  it('the fluid lock of aggregated TDX 1.0 steps keeps the plateau within 10% of the per-page BUSY/retry path', () => {
    for (const n of [4, 8]) {
      const per = acceptTime(n, { tdxModule: '1.0', fidelity: 'per-page' });
      const agg = acceptTime(n, { tdxModule: '1.0', fidelity: 'aggregate' });
      expect(Math.abs(agg - per) / per).toBeLessThan(0.1);
    }
  });
});

describe('idle vCPUs timer-tick exits', () => {
  function withTicks(hostCpus: number, ticks: boolean) {
    const sim = new Sim({ seed: 2 });
    const platform = tdxVm(sim, { gpaBytes: 16 * MiB, vcpus: 2, cpus: hostCpus, fidelity: 'per-page' });
    const cpus = platform.vcpus;
    let done = -1;
    sim.spawn((function* (): Proc<void> {
      sim.localIrqDisable();
      yield* platform.arch_accept_memory(0, 0, 16 * MiB, 'runtime');
      sim.localIrqEnable();
      done = sim.now;
    })(), { name: 'vcpu0', cpu: cpus[0]!, service: 'guest' });
    if (ticks) {
      sim.spawn((function* (): Proc<void> {
        // vCPU 1 halted in the idle loop, woken by a 1 kHz tick until vCPU 0 is done.
        while (done < 0) {
          yield sim.sleep(1 * MS);
          yield* platform.idle_tick_exit(1);
        }
      })(), { name: 'vcpu1-idle', cpu: cpus[1]!, service: 'guest' });
    }
    sim.run();
    platform.checkInvariants();
    return { done, m: platform.metrics() };
  }

  it('with one host CPU for two vCPUs, the idle vCPU tick exits queue with the accept exits and slow them', () => {
    const quiet = withTicks(1, false);
    const ticking = withTicks(1, true);
    expect(ticking.m['kvm.exits.TDVMCALL_HLT']).toBeGreaterThan(5);
    expect(ticking.m['host.cpus.waits']).toBeGreaterThan(0);
    expect(ticking.done).toBeGreaterThan(quiet.done);
  });

  it('with a host CPU per vCPU they cost host time but do not slow the accepting vCPU', () => {
    const quiet = withTicks(2, false);
    const ticking = withTicks(2, true);
    expect(ticking.m['kvm.exits.TDVMCALL_HLT']).toBeGreaterThan(5);
    expect(ticking.m['host.cpus.waits']).toBe(0);
    expect(ticking.done).toBe(quiet.done);
  });
});
