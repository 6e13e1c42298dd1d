import type { Attributes, AttributeValue } from '@opentelemetry/api';
import type { Attrs, AttrValue } from '../sim/index.ts';

/**
 * Engine attribute values as OpenTelemetry attribute values, carried faithfully: a bigint (a TDX
 * status such as TDX_OPERAND_BUSY, an address) becomes its hex string, "0x8000020000000000", as
 * the spec prints it; a non-finite number becomes its string, since JSON has no NaN or Infinity.
 */
export function toAttributeValue(v: AttrValue): AttributeValue {
  switch (typeof v) {
    case 'bigint':
      return v < 0n ? `-0x${(-v).toString(16)}` : `0x${v.toString(16)}`;
    case 'number':
      return Number.isFinite(v) ? v : String(v);
    default:
      return v;
  }
}

export function toAttributes(attrs: Attrs | undefined): Attributes {
  const out: Attributes = {};
  if (attrs === undefined) return out;
  for (const key of Object.keys(attrs)) out[key] = toAttributeValue(attrs[key]!);
  return out;
}

/** Parameters and other plain JSON-ish values for the root span: scalars kept, the rest as JSON. */
export function toParamAttribute(v: unknown): AttributeValue {
  if (typeof v === 'string' || typeof v === 'boolean') return v;
  if (typeof v === 'number' || typeof v === 'bigint') return toAttributeValue(v);
  return stableJson(v);
}

/** JSON with object keys sorted, bigints as hex: the same value always gives the same text. */
export function stableJson(v: unknown): string {
  return JSON.stringify(sortKeys(v)) ?? 'null';
}

function sortKeys(v: unknown): unknown {
  if (typeof v === 'bigint') return toAttributeValue(v);
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) out[k] = sortKeys((v as Record<string, unknown>)[k]);
    return out;
  }
  return v;
}
