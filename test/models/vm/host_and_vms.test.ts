import { describe, expect, it } from 'vitest';
import { GiB, MiB, Sim, type Rng } from '../../../sim/index.ts';
import type { Experiment, Params } from '../../../experiments/experiment.ts';
import { multiVmBoot } from '../../../experiments/multi_vm_boot.ts';
import { defaultParams } from '../../../experiments/params.ts';
import { Host, pamtReserves } from '../../../models/host/host.ts';
import { PlatformConfigError } from '../../../models/host/config_check.ts';
import { Vm } from '../../../models/vm/vm.ts';
import { onVcpu0, tdxVm } from '../host/fixture.ts';

const multi: Experiment = multiVmBoot;

function params(over: Params): Params {
  return { ...defaultParams(multi), memory_gib: 1, vcpus: 2, hz: 100, firmware_accept_mib: 64, ...over };
}

/** Runs multi-vm-boot, recording every random draw by stream name. */
function recordDraws(over: Params, seed = 3) {
  const sim = new Sim({ seed });
  const draws = new Map<string, number[]>();
  const rng = sim.rng.bind(sim);
  sim.rng = (name: string): Rng => {
    const r = rng(name);
    const random = r.random.bind(r);
    r.random = () => {
      const v = random();
      if (!draws.has(name)) draws.set(name, []);
      draws.get(name)!.push(v);
      return v;
    };
    return r;
  };
  const result = multi.run(params(over), sim);
  return { draws, metrics: result.metrics };
}

describe('a host that several VMs share', () => {
  it('a VM added to a host leaves another VM\'s random streams unchanged: every draw is named after its VM', () => {
    const app = { app_gib: 0.0625, app_threads: 2, app_arrivals: 'poisson', app_rate_gib_s: 0.5 };
    const alone = recordDraws({ vms: 1, ...app });
    const shared = recordDraws({ vms: 2, ...app });
    const vm1 = (d: Map<string, number[]>) => [...d.entries()].filter(([name]) => name.startsWith('vm.1.'));
    expect(vm1(alone.draws).length).toBeGreaterThan(0);
    // VM 1 draws what it drew alone, value for value, with VM 2 beside it...
    for (const [name, values] of vm1(alone.draws)) expect(shared.draws.get(name)!.slice(0, values.length)).toEqual(values);
    // ...and VM 2 draws from streams of its own.
    expect([...shared.draws.keys()].every((name) => name.startsWith('vm.1.') || name.startsWith('vm.2.'))).toBe(true);
    expect([...shared.draws.keys()].some((name) => name.startsWith('vm.2.'))).toBe(true);
  });

  it('per-VM and host metrics are reported under stable prefixes', () => {
    const { metrics } = recordDraws({ vms: 2 });
    for (const name of ['vm1.boot_to_userspace_s', 'vm2.boot_to_userspace_s', 'vm1.kvm.exits.EPT_VIOLATION', 'vm2.tdx.aug.4k', 'vm1.guest.accept_cpu_s', 'host.memory.used_bytes', 'host.memory.by_owner.vm2.bytes', 'tdx.tds']) {
      expect(metrics[name], name).toBeGreaterThan(0);
    }
    expect(metrics['tdx.tds']).toBe(2);
    expect(metrics['boot_to_userspace_s_max']).toBeGreaterThanOrEqual(metrics['boot_to_userspace_s_min']!);
  });

  it('two VMs on a host with fewer CPUs than their vCPUs boot slower than either alone; host CPU time balances', () => {
    const run = (vms: number) => {
      const sim = new Sim({ seed: 1 });
      const r = multi.run(params({ vms, vcpus: 4, host_cpus: 4, memory_gib: 2, accept: 'eager' }), sim);
      return { m: r.metrics, end: sim.now };
    };
    const alone = run(1);
    const two = run(2);
    expect(alone.m['host.cpus.waits']).toBe(0);
    expect(two.m['host.cpus.waits']).toBeGreaterThan(0);
    expect(two.m['vm1.vcpus.steal_ns']! + two.m['vm2.vcpus.steal_ns']!).toBeGreaterThan(0);
    for (const vm of ['vm1', 'vm2']) expect(two.m[`${vm}.boot_to_userspace_s`]!).toBeGreaterThan(alone.m['vm1.boot_to_userspace_s']!);
    for (const { m, end } of [alone, two]) {
      expect(m['host.cpus.busy_ns']! + m['host.cpus.idle_ns']!).toBe(4 * end);
      expect(m['host.cpus.utilisation']).toBeCloseTo(m['host.cpus.busy_ns']! / (4 * end), 12);
    }
    expect(two.m['host.cpus.utilisation']!).toBeGreaterThan(alone.m['host.cpus.utilisation']!);
  });

  it('each VM\'s guest memory comes from host memory it owns; the host accounts for both', () => {
    const sim = new Sim({ seed: 1 });
    const host = new Host(sim, { technology: 'tdx', cpus: 4, memoryBytes: 4 * GiB });
    const a = new Vm(sim, host, { bare: { vcpus: 1, gpaBytes: 64 * MiB }, fidelity: 'per-page' });
    const b = new Vm(sim, host, { bare: { vcpus: 1, gpaBytes: 64 * MiB }, fidelity: 'per-page' });
    for (const vm of [a, b]) {
      sim.spawn(vm.arch_accept_memory(0, 0, 8 * MiB, 'runtime'), { name: `${vm.name}/vcpu0`, cpu: vm.vcpus[0]!, service: `guest/${vm.name}` });
    }
    sim.run();
    a.checkInvariants();
    b.checkInvariants();
    host.checkInvariants();
    const owner = (vm: Vm, gpa: number) => host.memory.ownerName(host.memory.ownerOf(vm.kvm.gmem.hostPage(gpa / 4096) * 4096));
    expect(owner(a, 0)).toBe('vm1');
    expect(owner(b, 0)).toBe('vm2');
    expect(a.kvm.gmem.hostPage(0)).not.toBe(b.kvm.gmem.hostPage(0));
    // 8 MiB of folios each, their S-EPT pages (PDPT, PD, 4 PT) and their control pages.
    const perVm = 8 * MiB + (3 + 3) * 4096 + (1 + 6 + 6) * 4096;
    expect(host.memory.usedBytesBy(host.memory.ownerOf(a.kvm.gmem.hostPage(0) * 4096))).toBe(perVm);
    // And the TDX module's PAMT, taken at initialisation: all PAMT levels of the host's one TDMR.
    expect(host.memory.usedBytes()).toBe(2 * perVm + pamtReserves(host.config)[0]!);
  });

  it('the end-of-run invariant catches an accepted page on a host block another VM owns', () => {
    const sim = new Sim({ seed: 1 });
    const host = new Host(sim, { technology: 'tdx', cpus: 4, memoryBytes: 4 * GiB });
    const a = new Vm(sim, host, { bare: { vcpus: 1, gpaBytes: 64 * MiB } });
    const b = new Vm(sim, host, { bare: { vcpus: 1, gpaBytes: 64 * MiB } });
    for (const vm of [a, b]) sim.spawn(vm.arch_accept_memory(0, 0, 2 * MiB, 'runtime'), { name: `${vm.name}/vcpu0`, cpu: vm.vcpus[0]!, service: 'guest' });
    sim.run();
    a.checkInvariants();
    a.kvm.gmem.hostBlocks[0] = b.kvm.gmem.hostBlocks[0]!; // a's first region now points into b's memory
    expect(() => a.checkInvariants()).toThrow(/a guest_memfd folio on a host block another owner holds/);
  });

  it('a TD with more vCPUs than the host has CPUs is refused, naming both numbers (tdx_vm_init)', () => {
    const sim = new Sim({ seed: 1 });
    const host = new Host(sim, { technology: 'tdx', cpus: 4, memoryBytes: 4 * GiB });
    expect(() => new Vm(sim, host, { bare: { vcpus: 8, gpaBytes: 64 * MiB } })).toThrow(PlatformConfigError);
    expect(() => new Vm(sim, host, { bare: { vcpus: 8, gpaBytes: 64 * MiB } })).toThrow(/vcpus=8, host_cpus=4/);
    // An SNP guest may have more vCPUs than the host has CPUs (they time-share).
    const snp = new Host(sim, { technology: 'snp', cpus: 4, memoryBytes: 4 * GiB });
    expect(() => new Vm(sim, snp, { bare: { vcpus: 8, gpaBytes: 64 * MiB } })).not.toThrow();
  });

  it('VMs whose memory does not fit in the host are refused', () => {
    const sim = new Sim({ seed: 1 });
    const host = new Host(sim, { technology: 'tdx', cpus: 4, memoryBytes: 2 * GiB });
    new Vm(sim, host, { bare: { vcpus: 1, gpaBytes: GiB } });
    expect(() => new Vm(sim, host, { bare: { vcpus: 1, gpaBytes: 1.5 * GiB } })).toThrow(/host_memory_gib too small/);
  });

  it('the fixture\'s bare VM runs on its own host', () => {
    const sim = new Sim({ seed: 1 });
    const t = tdxVm(sim, { gpaBytes: 8 * MiB, vcpus: 1 });
    onVcpu0(sim, t, () => t.arch_accept_memory(0, 0, 4 * MiB, 'runtime'));
    t.checkInvariants();
    expect(t.metrics()['host.memory.by_kind.gmem.bytes']).toBe(4 * MiB);
  });
});
