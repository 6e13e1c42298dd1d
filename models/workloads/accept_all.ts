import { Priority, type Proc, type Process, type Sim } from '../../sim/index.ts';
import { assert } from '../../sim/index.ts';
import { SZ_1M } from '../guest/constants.ts';
import type { GuestKernel } from '../guest/kernel.ts';
import { deferred_init_memmap, memblock_free_all, memmap_init } from '../guest/mm_init.ts';
import { efiStub, firmware, waitForSetup } from './boot.ts';

/**
 * Acceptance throughput: how long `vcpus` CPUs take to accept all of a guest's unaccepted memory
 * ([R2]: 90 GiB in ~60 s on 1 vCPU, ~40 s on 4, no gain beyond). The guest is brought to
 * the point where every unaccepted MAX_ORDER block waits on zone->unaccepted_pages (firmware
 * pre-accept, the EFI stub, memblock_free_all, deferred init), then one kernel thread per vCPU
 * loops try_to_accept_memory_one() until nothing is left, as parallel eager acceptance does.
 */
export interface AcceptAllResult {
  /** Virtual time the parallel acceptance started and ended. */
  startNs: number;
  endNs: number;
  /** Bytes the accept threads accepted. */
  acceptedBytes: number;
}

/** ESTIMATE [estimate:kernel-image]: where the kernel image sits (LOAD_PHYSICAL_ADDR) and its size, reserved before freeing. */
const KERNEL_START = 16 * SZ_1M;
const KERNEL_END = 80 * SZ_1M;

export function* acceptAllWorkload(k: GuestKernel, setup: Process<void> | null = null): Proc<AcceptAllResult> {
  const sim = k.sim;
  yield* waitForSetup(k, setup);
  yield* firmware(k);
  yield* efiStub(k);
  k.memblock.reserve(KERNEL_START, KERNEL_END);
  yield* memmap_init(k);
  yield* memblock_free_all(k);
  yield* deferred_init_memmap(k);
  k.unaccepted.watchdogRunning = true;
  const before = k.metrics.acceptedBytes;
  const startNs = sim.now;
  const id = sim.opBegin('accept_all', { 'cvmsim.level': 'phase', vcpus: k.vcpus.length });
  const threads = k.vcpus.map((_, i) => k.spawn(acceptThread(k), `accept/${i}`, i, { priority: Priority.Normal }));
  for (const t of threads) yield t.join();
  sim.opEnd(id);
  k.shutdown();
  return { startNs, endNs: sim.now, acceptedBytes: k.metrics.acceptedBytes - before };
}

function* acceptThread(k: GuestKernel): Proc<void> {
  for (;;) {
    const zone = k.allocator.highestZoneWithUnaccepted();
    if (zone === null) return;
    yield* k.allocator.try_to_accept_memory_one(zone, 'free_pages_core');
  }
}

/** Starts acceptAllWorkload on vCPU 0 (after the VMM's setup, when given). */
export function startAcceptAll(k: GuestKernel, setup: Process<void> | null = null): Process<AcceptAllResult> {
  return k.spawn(acceptAllWorkload(k, setup), 'swapper/0', 0);
}

/** An accept-all run that ended: its result, after the guest's invariants are checked. */
export function finishedAcceptAll(k: GuestKernel, p: Process<AcceptAllResult>): AcceptAllResult {
  assert(p.state === 'done', 'accept-all did not finish', p.state);
  k.checkInvariants(0);
  return p.result!;
}

/** Runs acceptAllWorkload on vCPU 0 and checks the guest's invariants at the end. */
export function runAcceptAll(sim: Sim, k: GuestKernel, setup: Process<void> | null = null): AcceptAllResult {
  const p = startAcceptAll(k, setup);
  sim.run();
  sim.finishRun();
  return finishedAcceptAll(k, p);
}
