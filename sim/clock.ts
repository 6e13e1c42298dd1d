/**
 * Virtual time. An Instant is an integer number of nanoseconds since the start of a run; a
 * Duration is an integer number of nanoseconds. A safe integer covers 104 simulated days.
 * Only the engine advances time; nothing inside a run reads the wall clock.
 */
export type Instant = number;
export type Duration = number;

export const NS = 1;
export const US = 1_000;
export const MS = 1_000_000;
export const S = 1_000_000_000;

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;
export const TiB = 1024 * GiB;

/** Human form of a duration for messages: "12.5ms", "3.2s". */
export function formatDuration(ns: Duration): string {
  const abs = Math.abs(ns);
  if (abs >= S) return `${(ns / S).toFixed(3)}s`;
  if (abs >= MS) return `${(ns / MS).toFixed(3)}ms`;
  if (abs >= US) return `${(ns / US).toFixed(3)}us`;
  return `${ns}ns`;
}
