import { describe, expect, it } from 'vitest';
import { cvmsim } from './cli_harness.ts';

describe('multi-vm-boot and the host through the CLI', () => {
  it('run --json prints per-VM, host, KVM and TDX module metrics', async () => {
    const r = await cvmsim(['run', 'multi-vm-boot', '--set', 'vms=2', '--set', 'vcpus=2', '--set', 'memory_gib=1', '--set', 'host_cpus=4', '--set', 'firmware_accept_mib=64', '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const m = JSON.parse(r.stdout).metrics as Record<string, number>;
    for (const name of ['vm1.boot_to_userspace_s', 'vm2.boot_to_userspace_s', 'host.cpus', 'host.memory.used_bytes', 'vm1.kvm.exits.EPT_VIOLATION', 'vm2.kvm.mmu_lock.acquisitions', 'vm1.tdx.aug.4k', 'tdx.tds']) {
      expect(m[name], name).toBeDefined();
    }
    expect(m['host.cpus']).toBe(4);
  });

  it('a TD with more vCPUs than host CPUs is bad input (exit 2), naming both numbers', async () => {
    const r = await cvmsim(['run', 'accept-boot', '--set', 'vcpus=8', '--set', 'host_cpus=4']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/vcpus=8, host_cpus=4/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    const multi = await cvmsim(['run', 'multi-vm-boot', '--set', 'vcpus=16', '--set', 'host_cpus=8']);
    expect(multi.code).toBe(2);
    expect(multi.stderr).toMatch(/vcpus=16, host_cpus=8/);
  });

  it('VMs that do not fit in host memory are bad input (exit 2)', async () => {
    const r = await cvmsim(['run', 'multi-vm-boot', '--set', 'vms=4', '--set', 'memory_gib=4', '--set', 'host_memory_gib=8']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/host_memory_gib too small/);
  });
});
