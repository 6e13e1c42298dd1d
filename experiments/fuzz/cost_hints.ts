/**
 * Parameter values known to multiply a run's work, in doublings: log2 of the factor in wall
 * time measured at the defaults (events executed grow a little less, each event costs a little
 * more), rounded up so that such a run at its reduced sizes takes about a second. The fuzzer charges them against a configuration's size
 * budget before it draws the numbers, so that such a value comes with small sizes. This is the
 * only model knowledge in the fuzzer and it is optional: a parameter or experiment not listed
 * here costs nothing extra, and the wall-time cap still bounds its runs.
 */
export const COST_HINTS: Readonly<Record<string, Readonly<Record<string, number>>>> = {
  // Every 4K operation its own step, 512 per 2 MiB region: x150-x750 events, x40-x90 wall time.
  fidelity: { 'per-page': 11 },
  // SNP page state changes one 4K page per VMGEXIT: x80-x120 events, x50-x80 wall time.
  psc: { msr: 9 },
  // The seed-era allocator keeps unaccepted pages in the buddy lists: x5-x7 events.
  allocator: { seed: 3 },
};

/**
 * Numbers that size the host rather than the work (more host CPUs or memory makes no run longer;
 * 0 means "enough for the VMs"): they are drawn like the others but spend none of the budget.
 */
export const FREE_NUMBERS: ReadonlySet<string> = new Set(['host_cpus', 'host_memory_gib', 'sockets', 'stagger_ms']);

/** The doublings a parameter value costs (0 when nothing is known of it). */
export function hintedCost(param: string, value: unknown): number {
  return typeof value === 'string' ? (COST_HINTS[param]?.[value] ?? 0) : 0;
}
