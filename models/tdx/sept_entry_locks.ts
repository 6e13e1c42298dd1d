import { type TryLockAnswer } from '../../sim/index.ts';
import { assert } from '../../sim/assert.ts';

/**
 * The per-entry Secure-EPT locks of the TDX module (TDX 1.5, [tdx-module:src/common/helpers/tdx_locks.h]): a lock bit
 * (TDEL) and a host-priority bit (TDHP) inside each S-EPT entry. sept_lock_acquire_host() that
 * finds the entry locked sets TDHP and answers TDX_OPERAND_BUSY; sept_lock_acquire_guest()
 * (TDG.MEM.PAGE.ACCEPT) answers TDX_OPERAND_BUSY if locked, and if it got the lock while TDHP is
 * set it drops it and answers TDX_OPERAND_BUSY_HOST_PRIORITY. A successful host acquire clears
 * TDHP. Only entries currently locked or flagged are stored (a handful at a time).
 */
export class SeptEntryLocks {
  private readonly locked = new Map<number, 'host' | 'guest'>();
  private readonly hostPriority = new Set<number>();
  /** Whether TDHP exists (TDX 1.5+); TDX 1.0 locks entries with a guest-side CAS only. */
  constructor(readonly withHostPriority: boolean) {}

  acquireHost(entry: number): TryLockAnswer {
    if (this.locked.has(entry)) {
      if (this.withHostPriority) this.hostPriority.add(entry);
      return 'busy';
    }
    this.locked.set(entry, 'host');
    this.hostPriority.delete(entry);
    return 'acquired';
  }

  acquireGuest(entry: number): TryLockAnswer {
    if (this.locked.has(entry)) return 'busy';
    if (this.hostPriority.has(entry)) return 'busy_host_priority';
    this.locked.set(entry, 'guest');
    return 'acquired';
  }

  release(entry: number, side: 'host' | 'guest'): void {
    if (this.locked.get(entry) !== side) assert(false, `S-EPT entry lock released by the ${side} side while not held by it`, entry);
    this.locked.delete(entry);
  }

  get heldCount(): number {
    return this.locked.size;
  }

  /** A key for a 2M-level entry that never collides with a 4K page index. */
  static entry2m(region: number): number {
    return -1 - region;
  }
}
