import { assert } from '../../../sim/assert.ts';
import { hex } from '../../arch/units.ts';
import { TDX_SUCCESS } from '../arch.ts';
import type { Td } from '../td.ts';

/**
 * TDH.PHYMEM.PAGE.WBINVD(hpa with the TD's HKID) ([tdx-module:src/vmm_dispatcher/api_calls/tdh_phymem_page_wbinvd.c]):
 * writes back and invalidates the page's cache lines tagged with the TD's key, so the page can
 * be reused with another key. The page must be free in the PAMT (removed). Untimed; the caller
 * charges it.
 */
export function tdh_phymem_page_wbinvd(td: Td, hpa: number): bigint {
  if (td.module.pamt.inUse(hpa)) assert(false, 'TDH.PHYMEM.PAGE.WBINVD of a page still assigned to the TD', hex(hpa));
  td.removal.wbinvd++;
  return TDX_SUCCESS;
}
