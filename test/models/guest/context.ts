import { Cpu, Sim, type Proc } from '../../../sim/index.ts';
import { AcceptLedger } from '../../../models/guest/accept_ledger.ts';
import { ArchAccept } from '../../../models/guest/arch_accept.ts';
import { EFI_UNACCEPTED_UNIT_SIZE } from '../../../models/guest/constants.ts';
import { defaultGuestCosts } from '../../../models/guest/costs.ts';
import { EfiUnacceptedMemory } from '../../../models/guest/efi_unaccepted_memory.ts';
import { GuestMetrics } from '../../../models/guest/metrics.ts';
import { UnacceptedMemory, type AcceptLockMode, type AcceptingListCheck } from '../../../models/guest/unaccepted_memory.ts';
import { FixedCostPlatform } from './fixed_cost_platform.ts';

export const UNIT = EFI_UNACCEPTED_UNIT_SIZE;

/**
 * A small accept_memory() scenario: `vcpus` vCPUs, a bitmap of `units` 2 MiB units from
 * phys_base 0 with every unit unaccepted, and the fixed-cost platform double.
 */
export function acceptContext(options: { vcpus?: number; units?: number; mode?: AcceptLockMode; nsPer4K?: number; seed?: number; check?: AcceptingListCheck } = {}) {
  const sim = new Sim({ seed: options.seed ?? 1 });
  const vcpus = Array.from({ length: options.vcpus ?? 2 }, (_, i) => new Cpu(sim, `vcpu${i}`));
  const units = options.units ?? 16;
  const table = new EfiUnacceptedMemory(0, Math.ceil(units / 8));
  table.bitmap_set(0, units);
  const platform = new FixedCostPlatform(sim, { vcpus }, options.nsPer4K ?? 2500);
  const ledger = new AcceptLedger(units * UNIT);
  const metrics = new GuestMetrics(vcpus.length);
  const arch = new ArchAccept(sim, platform, vcpus, ledger, metrics);
  const um = new UnacceptedMemory(sim, table, arch, options.mode ?? 'dropped', defaultGuestCosts, metrics, options.check ?? 'upstream');
  um.watchdogRunning = true;
  /** Runs body on vCPU i as a guest thread. */
  const on = (i: number, body: Proc<void>, name = `cpu${i}`) => sim.spawn(body, { name, cpu: vcpus[i]!, service: 'guest' });
  return { sim, vcpus, table, platform, ledger, metrics, arch, um, on };
}
