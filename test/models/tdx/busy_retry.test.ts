import { describe, expect, it } from 'vitest';
import { Cpu, MiB, Sim, US, type Proc } from '../../../sim/index.ts';
import { SeptEntryLocks } from '../../../models/tdx/sept_entry_locks.ts';
import { RecordingObserver, acceptInParallel, tdxVm, type TestVmOptions } from '../host/fixture.ts';

/** vCPU 0 accepts 64 KiB while a host thread holds the secure_ept_lock exclusive for 50 us from t=1us. */
function acceptAgainstExclusiveHolder(config: Partial<TestVmOptions>) {
  const sim = new Sim({ seed: 5 });
  const obs = new RecordingObserver(sim);
  sim.observer = obs;
  const platform = tdxVm(sim, { gpaBytes: 8 * MiB, vcpus: 1, fidelity: 'per-page', ...config });
  const cpus = platform.vcpus;
  const hostCpu = new Cpu(sim, 'host0');
  let held = -1;
  sim.spawn((function* (): Proc<void> {
    yield sim.sleep(1 * US);
    // A SEAMCALL that takes the S-EPT tree lock exclusive (TDH.MEM.RANGE.BLOCK in a zap),
    // retried while BUSY as KVM does for it.
    while (platform.td.secureEptLock.tryAcquire('exclusive', 'host') !== 'acquired') yield sim.compute(100);
    held = sim.now;
    yield sim.compute(50 * US);
    platform.td.secureEptLock.release('exclusive');
  })(), { name: 'kvm-zap', cpu: hostCpu, service: 'kvm' });
  sim.spawn(platform.arch_accept_memory(0, 0, 64 * 1024, 'runtime'), { name: 'vcpu0', cpu: cpus[0]!, service: 'guest' });
  sim.run();
  platform.checkInvariants();
  expect(held).toBeGreaterThan(0);
  return { sim, obs, platform, held, m: platform.metrics() };
}

describe('TDX_OPERAND_BUSY from the S-EPT tree lock, and KVM retrying', () => {
  it('upstream KVM retries the fault locally until the exclusive holder leaves; each BUSY is an event with its status', () => {
    const { obs, m, held } = acceptAgainstExclusiveHolder({ kvmRetry: 'local' });
    const busy = obs.log.filter((e) => e.kind === 'instant' && e.name === 'TDX_OPERAND_BUSY');
    expect(busy.length).toBeGreaterThan(10);
    expect(busy[0]!.attrs['status']).toBe('0x8000020000000092'); // BUSY | OPERAND_ID_SEPT_TREE (146)
    expect(busy.every((e) => e.at >= held && e.at <= held + 50 * US)).toBe(true);
    expect(obs.log.filter((e) => e.name === 'RET_PF_RETRY')).toHaveLength(busy.length);
    expect(m['kvm.ret_pf_retry']).toBe(busy.length);
    expect(m['tdx.busy.TDX_OPERAND_BUSY']).toBe(busy.length);
    // Local retries stay inside one exit each: 16 pages, 16 exits.
    expect(m['kvm.exits.EPT_VIOLATION']).toBe(16);
  });

  it('the earlier KVM re-enters the guest instead, so every BUSY costs another TDCALL and exit', () => {
    const { m } = acceptAgainstExclusiveHolder({ kvmRetry: 'reenter' });
    expect(m['tdx.busy.total']).toBeGreaterThan(0);
    expect(m['kvm.exits.EPT_VIOLATION']).toBe(16 + m['tdx.busy.total']!);
  });

  it('the S-EPT tree lock has no host-priority bit: a refused SEAMCALL does not turn later acquires into BUSY_HOST_PRIORITY', () => {
    const sim = new Sim({ seed: 5 });
    const platform = tdxVm(sim, { gpaBytes: 8 * MiB, vcpus: 1 });
    const lock = platform.td.secureEptLock;
    expect(lock.tryAcquire('exclusive', 'host')).toBe('acquired');
    expect(lock.tryAcquire('shared', 'host')).toBe('busy');
    expect(lock.hostPriority).toBe(false);
    expect(lock.tryAcquire('shared', 'guest')).toBe('busy');
    lock.release('exclusive');
    expect(lock.tryAcquire('shared', 'guest')).toBe('acquired');
    lock.release('shared');
  });

  it('TDX 1.0 AUGs take the lock exclusive: two vCPUs faulting at once get BUSY; TDX 1.5 AUGs share it', () => {
    for (const [version, expectBusy] of [['1.0', true], ['1.5', false]] as const) {
      const sim = new Sim({ seed: 5 });
      const platform = tdxVm(sim, { gpaBytes: 16 * MiB, vcpus: 2, fidelity: 'per-page', tdxModule: version });
      acceptInParallel(sim, platform, 16 * MiB);
      const m = platform.metrics();
      if (expectBusy) expect(m['tdx.busy.TDX_OPERAND_BUSY']).toBeGreaterThan(0);
      else expect(m['tdx.busy.total']).toBe(0);
      expect(m['tdx.aug.4k']).toBe(4096);
    }
  });
});

describe('S-EPT entry locks with host priority (TDX 1.5)', () => {
  it('a refused host acquire sets host priority; the guest side is then refused with BUSY_HOST_PRIORITY until the host gets it', () => {
    const locks = new SeptEntryLocks(true);
    expect(locks.acquireGuest(7)).toBe('acquired');
    expect(locks.acquireHost(7)).toBe('busy');
    locks.release(7, 'guest');
    expect(locks.acquireGuest(7)).toBe('busy_host_priority');
    expect(locks.acquireHost(7)).toBe('acquired');
    locks.release(7, 'host');
    expect(locks.acquireGuest(7)).toBe('acquired');
    locks.release(7, 'guest');
    expect(locks.heldCount).toBe(0);
  });

  it('TDX 1.0 has no host-priority bit: the guest side only ever sees BUSY', () => {
    const locks = new SeptEntryLocks(false);
    expect(locks.acquireGuest(7)).toBe('acquired');
    expect(locks.acquireHost(7)).toBe('busy');
    locks.release(7, 'guest');
    expect(locks.acquireGuest(7)).toBe('acquired');
  });
});
