import type { Proc } from '../../../sim/index.ts';
import { assert } from '../../../sim/assert.ts';
import { SIZE_2M, hex } from '../../arch/units.ts';
import {
  OPERAND_ID_RCX, TDX_OPERAND_BUSY, TDX_OPERAND_BUSY_HOST_PRIORITY, TDX_OPERAND_INVALID, TDX_PAGE_ALREADY_ACCEPTED,
  TDX_PAGE_SIZE_MISMATCH, TDX_PS_1G, TDX_PS_2M, TDX_PS_4K, TDX_SUCCESS, withOperand, type TdxPageLevel,
} from '../arch.ts';
import { Region } from '../secure_ept.ts';
import { SeptEntryLocks } from '../sept_entry_locks.ts';
import type { Td } from '../td.ts';
import { TD_EXIT_EPT_VIOLATION, levelBytes } from '../tdx_module.ts';

/**
 * TDG.MEM.PAGE.ACCEPT(gpa | level), a guest TDCALL, on the calling vCPU
 * ([tdx-module:src/td_dispatcher/vm_exits/tdg_mem_page_accept.c]). Returns the status, or
 * TD_EXIT_EPT_VIOLATION when the entry is not PENDING at the requested level (the TDCALL does not
 * complete; its cost is the exit's, charged by the exit path).
 */
export function* tdg_mem_page_accept(td: Td, gpa: number, level: TdxPageLevel, link: number): Proc<bigint> {
  const sim = td.sim;
  const traced = sim.observer !== null;
  const id = traced ? sim.opBegin('TDG.MEM.PAGE.ACCEPT', { gpa: hex(gpa), size: levelBytes(level), level }, link) : 0;
  td.lastAcceptOp = id;
  const status = yield* accept(td, gpa, level);
  if (traced) sim.opEnd(id, { status: status === TD_EXIT_EPT_VIOLATION ? 'EPT_VIOLATION' : hex(status) });
  return status;
}

function* accept(td: Td, gpa: number, level: TdxPageLevel): Proc<bigint> {
  if (level === TDX_PS_1G) {
    // verify_page_info_input(gpa_mappings, LVL_PT, LVL_PD): 1G accepts are not supported.
    td.counters.operandInvalid++;
    yield* td.tdcall();
    return withOperand(TDX_OPERAND_INVALID, OPERAND_ID_RCX);
  }
  const sept = td.sept;
  const page = gpa / 4096;
  const region = sept.region(page);
  const state = sept.regionState(region);
  if (level === TDX_PS_4K) {
    // Check: the leaf must be a PENDING 4K entry.
    if (state === Region.LeafMapped) return yield* answer(td, TDX_PAGE_ALREADY_ACCEPTED, TDX_PS_2M);
    // A 4K ACCEPT under a PENDING 2M leaf needs TDH.MEM.PAGE.DEMOTE by the host: not modelled.
    assert(state !== Region.LeafPending, 'TDG.MEM.PAGE.ACCEPT(4K) inside a PENDING 2M leaf (DEMOTE path not modelled)', hex(gpa));
    if (state === Region.Free || !sept.aug4k.test(page)) return TD_EXIT_EPT_VIOLATION;
    if (sept.accepted4k.test(page)) return yield* answer(td, TDX_PAGE_ALREADY_ACCEPTED, TDX_PS_4K);
    // Lock: the entry's guest-side lock.
    const lock = td.entryLocks.acquireGuest(page);
    if (lock !== 'acquired') return yield* refuse(td, lock, gpa);
    // Commit: zero the page with the TD's key, mark it MAPPED; release.
    yield* td.tdcall();
    yield* td.zero(4096);
    sept.accepted4k.set(page);
    td.counters.accepted4k++;
    td.entryLocks.release(page, 'guest');
    return TDX_SUCCESS;
  }
  if (state === Region.PageTable) {
    td.counters.sizeMismatch++;
    return yield* answer(td, TDX_PAGE_SIZE_MISMATCH, TDX_PS_2M);
  }
  if (state === Region.LeafMapped) return yield* answer(td, TDX_PAGE_ALREADY_ACCEPTED, TDX_PS_2M);
  if (state === Region.Free) return TD_EXIT_EPT_VIOLATION;
  const entry = SeptEntryLocks.entry2m(region);
  const lock = td.entryLocks.acquireGuest(entry);
  if (lock !== 'acquired') return yield* refuse(td, lock, gpa);
  // The 2M accept zeroes 512 4K pages (accept_counter loop); interruptions are not modelled.
  yield* td.tdcall();
  yield* td.zero(SIZE_2M);
  sept.regions[region] = Region.LeafMapped;
  sept.accepted2m++;
  td.counters.accepted2m++;
  td.entryLocks.release(entry, 'guest');
  return TDX_SUCCESS;
}

function* answer(td: Td, status: bigint, eptLevel: number): Proc<bigint> {
  if (status === TDX_PAGE_ALREADY_ACCEPTED) td.counters.alreadyAccepted++;
  yield* td.tdcall();
  return withOperand(status, BigInt(eptLevel));
}

function* refuse(td: Td, lock: 'busy' | 'busy_host_priority', gpa: number): Proc<bigint> {
  const status = withOperand(lock === 'busy' ? TDX_OPERAND_BUSY : TDX_OPERAND_BUSY_HOST_PRIORITY, OPERAND_ID_RCX);
  td.countBusy(status, 'TDG.MEM.PAGE.ACCEPT', gpa);
  yield* td.tdcall();
  return status;
}
