import { CacheLines, countMetric, measureMetric, type CacheLineCosts, type CacheLinesOptions, type MetricSpecs } from '../../sim/index.ts';

/**
 * What moving a contended cache line costs the CPU that touches it (an atomic on a word another
 * CPU wrote last). ESTIMATE [estimate:cache-line-transfer]: core-to-core transfers on server
 * parts are commonly 50-100 ns within a socket and 150-300 ns across sockets; 80 ns and 200 ns.
 */
export const CACHE_LINE_COSTS: CacheLineCosts = { sameSocketNs: 80, crossSocketNs: 200 };

/** The machine's lines: their costs, the sockets, and whether transfers are modelled (`cache_lines`). */
export type LineOptions = Omit<CacheLinesOptions, 'lines'>;

/** Lines as a host without a Host object gives them (tests of one module or one VM): one socket, on. */
export const DEFAULT_LINE_OPTIONS: LineOptions = { ...CACHE_LINE_COSTS, sockets: 1, enabled: true };

/** What cacheLineMetrics() writes under its prefix (`vm1.tdx.lines`, `vm1.kvm.lines`, `host.lines`). */
export const CACHE_LINE_METRICS: MetricSpecs = {
  '*.transfers': countMetric('transfers', 'cache-line transfers of one shared word (an atomic on a line another CPU wrote last)'),
  transfers: countMetric('transfers', 'cache-line transfers of these words in all'),
  cross_socket_transfers: measureMetric('transfers', 'those from a CPU on another socket (aggregated steps count a share)'),
  stall_ns: measureMetric('ns', 'what the transfers and the waits for busy lines cost the touching threads'),
};

/** The metrics of `lines`, by word (`names[i]` for line i, or `name` for a family of lines). */
export function cacheLineMetrics(prefix: string, out: Record<string, number>, lines: CacheLines, names: readonly string[] | string): void {
  if (typeof names === 'string') out[`${prefix}.${names}.transfers`] = (out[`${prefix}.${names}.transfers`] ?? 0) + lines.transfers;
  else names.forEach((n, i) => (out[`${prefix}.${n}.transfers`] = lines.transfersByLine[i]!));
  out[`${prefix}.transfers`] = (out[`${prefix}.transfers`] ?? 0) + lines.transfers;
  out[`${prefix}.cross_socket_transfers`] = (out[`${prefix}.cross_socket_transfers`] ?? 0) + lines.crossSocketTransfers;
  out[`${prefix}.stall_ns`] = (out[`${prefix}.stall_ns`] ?? 0) + lines.transferNs + lines.waitNs;
}
