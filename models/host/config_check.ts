/**
 * Checks of platform configuration values. A bad value is the user's input error, not a model
 * bug: the message names the field and the allowed values (the CLI turns it into exit code 2).
 */
export class PlatformConfigError extends Error {
  override name = 'PlatformConfigError';
}

export function oneOf<T extends string>(field: string, value: T | undefined, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (!allowed.includes(value)) {
    throw new PlatformConfigError(`${field} must be one of ${allowed.map((a) => `'${a}'`).join(', ')} (got ${JSON.stringify(value)})`);
  }
  return value;
}

export function integerIn(field: string, value: number | undefined, min: number, max: number, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new PlatformConfigError(`${field} must be an integer in [${min}, ${max}] (got ${JSON.stringify(value)})`);
  }
  return value;
}

export function positive(field: string, value: number | undefined): void {
  if (value === undefined) return;
  if (!(value > 0 && value < Infinity)) throw new PlatformConfigError(`${field} must be a positive finite number (got ${JSON.stringify(value)})`);
}

/** Every cost override must be a finite, non-negative number. */
export function costs(field: string, value: Record<string, unknown> | undefined, known: readonly string[]): void {
  if (value === undefined) return;
  for (const [k, v] of Object.entries(value)) {
    if (!known.includes(k)) throw new PlatformConfigError(`${field}.${k} is not a cost (known: ${known.join(', ')})`);
    if (typeof v !== 'number' || !(v >= 0 && v < Infinity)) throw new PlatformConfigError(`${field}.${k} must be a finite non-negative number (got ${JSON.stringify(v)})`);
  }
}
