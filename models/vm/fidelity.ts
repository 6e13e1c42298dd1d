/**
 * How a VM's host side simulates per-4K work: 'aggregate' (default) runs a region's identical 4K
 * steps as one timed step (exactly the per-page time when uncontended; tdx_accept_memory.ts and
 * the SNP files say what each aggregates), 'per-page' gives every TDCALL, exit, SEAMCALL,
 * RMPUPDATE, PVALIDATE, clear and zero its own step (exact, slow).
 */
export const ACCEPT_FIDELITIES = ['aggregate', 'per-page'] as const;
export type AcceptFidelity = (typeof ACCEPT_FIDELITIES)[number];
