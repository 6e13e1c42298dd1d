import { describe, expect, it } from 'vitest';
import { GiB } from '../../../sim/index.ts';
import { TDX_PS_2M, TDX_PS_4K } from '../../../models/tdx/arch.ts';
import { PAGES_PER_2M } from '../../../models/arch/units.ts';
import { Region, SecureEpt } from '../../../models/tdx/secure_ept.ts';

describe('TDH.MEM.SEPT.ADD state in the Secure EPT', () => {
  it('one PD page per 1 GiB and one PDPT page per 512 GiB: adding one leaves its neighbours missing', () => {
    const sept = new SecureEpt(513 * GiB);
    const regionsPer1G = GiB / (PAGES_PER_2M * 4096);
    const lastOfFirst1G = regionsPer1G - 1;
    const first512G = 512 * regionsPer1G;
    sept.addPage(0, 'pdpt');
    sept.addPage(0, 'pd');
    expect(sept.pageMissing(lastOfFirst1G, 'pdpt', TDX_PS_4K)).toBe(false);
    expect(sept.pageMissing(lastOfFirst1G, 'pd', TDX_PS_4K)).toBe(false);
    expect(sept.pageMissing(regionsPer1G, 'pd', TDX_PS_4K)).toBe(true);
    expect(sept.pageMissing(first512G - 1, 'pdpt', TDX_PS_4K)).toBe(false);
    expect(sept.pageMissing(first512G, 'pdpt', TDX_PS_4K)).toBe(true);
    expect(SecureEpt.pageKey(0, 'pdpt')).not.toBe(SecureEpt.pageKey(first512G, 'pdpt'));
    expect(SecureEpt.pageKey(0, 'pd')).toBe(SecureEpt.pageKey(lastOfFirst1G, 'pd'));
    expect(() => sept.addPage(lastOfFirst1G, 'pd')).toThrow(/PD page that exists/);
  });

  it('a PT page is missing only for a 4K mapping of a FREE region, and turns the region into a page table', () => {
    const sept = new SecureEpt(2 * GiB);
    expect(sept.pageMissing(3, 'pt', TDX_PS_4K)).toBe(true);
    expect(sept.pageMissing(3, 'pt', TDX_PS_2M)).toBe(false);
    sept.addPage(3, 'pt');
    expect(sept.regionState(3)).toBe(Region.PageTable);
    expect(sept.pageMissing(3, 'pt', TDX_PS_4K)).toBe(false);
    expect(sept.septPagesAdded).toBe(1);
  });
});
