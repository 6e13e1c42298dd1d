import { GiB, MiB, Sim, type Proc } from '../../../sim/index.ts';
import { GuestKernel, defaultGuestConfig, type GuestConfig } from '../../../models/guest/kernel.ts';
import { memblock_free_all, memmap_init } from '../../../models/guest/mm_init.ts';
import { efiStub, firmware } from '../../../models/workloads/boot.ts';
import { fixedCostKernel } from './fixed_cost_platform.ts';

/** Cheap boot costs so scenario tests spend their virtual time on what they test. */
export const quickCosts = {
  firmwareInitNs: 0,
  decompressNs: 0,
  earlyInitNs: 0,
  initcallsNs: 0,
  userspaceNs: 0,
};

/** A guest kernel on the fixed-cost platform double, not yet booted. */
export function guestContext(overrides: Partial<GuestConfig> = {}, seed = 1) {
  const sim = new Sim({ seed });

  const base = defaultGuestConfig({ memoryBytes: 4 * GiB, vcpus: 2, hz: 0, firmwareAcceptBytes: 512 * MiB });
  const config: GuestConfig = { ...base, ...overrides, costs: { ...base.costs, ...quickCosts, ...(overrides.costs ?? {}) } };
  const { k, platform } = fixedCostKernel(sim, config);
  /** Runs body on vCPU i and the simulation to its end. */
  const run = (body: Proc<void>, vcpu = 0) => {
    const p = sim.spawn(body, { name: `test/${vcpu}`, cpu: k.vcpus[vcpu]!, service: 'guest' });
    sim.run();
    if (p.state !== 'done') throw new Error(`test process stuck: ${p.state}`);
  };
  return { sim, k, platform, run };
}

/** Firmware pre-accept, the EFI stub's bitmap and memblock_free_all(): the allocator is live, watermarks zero. */
export function* bringUpAllocator(k: GuestKernel): Proc<void> {
  yield* firmware(k);
  yield* efiStub(k);
  k.memblock.reserve(16 * MiB, 80 * MiB);
  yield* memmap_init(k);
  yield* memblock_free_all(k);
}
