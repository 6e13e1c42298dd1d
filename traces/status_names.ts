import { tdxStatusName } from '../models/tdx/arch.ts';

/**
 * The spec's name of a status a span carries as hex. TDX SEAMCALL and TDCALL statuses are 64-bit
 * values printed with 16 hex digits ("0x8000020000000000" is TDX_OPERAND_BUSY), so a 16-digit
 * value is named from the TDX module's table (models/tdx/arch.ts, which imports nothing);
 * anything else has no name here (SNP's short PVALIDATE codes travel with their own name).
 */
export function statusName(value: unknown): string | undefined {
  if (typeof value !== 'string' || !/^0x[0-9a-f]{16}$/.test(value)) return undefined;
  return tdxStatusName(BigInt(value));
}
