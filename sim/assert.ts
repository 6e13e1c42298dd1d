/**
 * Assertions are always on. A failed one throws a SimAssertionError; the engine decorates every
 * error that escapes a run with the root seed, the virtual time and the running process, so any
 * crash can be reproduced with the same seed.
 *
 * Expected outcomes (a BUSY answer, a refused hot-add) are return values, never assertions.
 */
export class SimAssertionError extends Error {
  override name = 'SimAssertionError';
  constructor(message: string, readonly subject?: unknown) {
    super(subject === undefined ? message : `${message} (${describe(subject)})`);
  }
}

export function assert(condition: boolean, message: string, subject?: unknown): asserts condition {
  if (!condition) throw new SimAssertionError(message, subject);
}

function describe(subject: unknown): string {
  if (subject !== null && typeof subject === 'object') {
    const named = subject as { describe?: () => string; name?: unknown };
    if (typeof named.describe === 'function') return named.describe();
    if (typeof named.name === 'string') return named.name;
  }
  try {
    return JSON.stringify(subject, (_k, v) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v));
  } catch {
    return String(subject);
  }
}
