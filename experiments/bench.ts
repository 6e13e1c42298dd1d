/**
 * npm run bench [-- --json]: engine throughput against a plain heap-and-callback loop measured
 * in the same run, as ratios (wall time is never asserted in tests). Workloads of 1e6
 * operations: 1000 processes x 1000 exponential timeouts; 64 workers on a mutex (think Exp(63),
 * hold Exp(1)); an M/M/4 queue (lambda 3.2, mu 1). Each figure is the median of 5 runs,
 * reference and engine alternating; a fourth row repeats the mutex workload with tracing on
 * at `op` level, a fifth runs 64 CPUs with one thread each alternating compute and sleep
 * (Exp(1 us) each), the CPU scheduler's hot path; a sixth runs them as vCPUs on a pool of 64
 * host CPUs (every compute takes a host CPU, every sleep gives it back); a seventh measures what
 * one span costs (64 threads each timing an operation, traced at `op` level against the same run
 * untraced: microseconds of CPU time per span). Then (unless --no-models) the model runs issue 4 budgets, once each: wall time,
 * peak RSS, and the model's events per second against the reference loop's.
 */
import { Cpu, HostCpus, Mutex, Sim, Store, type Proc } from '../sim/index.ts';
import { referenceCpu, referenceMmc, referenceMutex, referenceTimeouts } from './bench_reference.ts';
import type { Params } from './experiment.ts';
import type { TraceSession } from '../traces/index.ts';

// Tracing and the models are imported only after the engine workloads have run: loading them
// first measurably slowed the engine rows (a bigger heap and module graph), which would charge
// the engine for code it does not use.
type TraceBench = (sim: Sim, level: 'op') => TraceSession;
let traceBenchObserver: TraceBench | null = null;

const OPS = 1_000_000;
const REPEATS = 5;

function exp(r: { random(): number }, mean: number): number {
  return Math.round(-mean * Math.log(1 - r.random()));
}

function engineTimeouts(): number {
  const sim = new Sim({ seed: 1 });
  const rng = sim.rng('bench.timeouts');
  let done = 0;
  for (let p = 0; p < 1000; p++) {
    sim.spawn((function* (): Proc {
      for (let i = 0; i < 1000; i++) {
        yield sim.sleep(exp(rng, 1000));
        done++;
      }
    })(), 'timer');
  }
  sim.run();
  return done;
}

function engineMutex(traced = false): number {
  const sim = new Sim({ seed: 1 });
  const session = traced ? traceBenchObserver!(sim, 'op') : null;
  const rng = sim.rng('bench.mutex');
  const lock = new Mutex(sim, 'lock');
  let count = 0;
  for (let w = 0; w < 64; w++) {
    sim.spawn((function* (): Proc {
      while (count < OPS) {
        yield sim.sleep(exp(rng, 63_000));
        yield lock.acquire();
        count++;
        yield sim.sleep(exp(rng, 1_000));
        lock.release();
      }
    })(), 'worker');
  }
  sim.run();
  if (session !== null) void session.finish();
  return count;
}

/**
 * 64 CPUs with one thread each, alternating compute(Exp(1 us)) and sleep(Exp(1 us)): every
 * compute takes an idle CPU and every sleep leaves it idle, the CPU scheduler's hot path. With
 * `hostCpus`, the CPUs are vCPUs backed by that many host CPUs.
 */
function engineCpu(hostCpus = 0): number {
  const sim = new Sim({ seed: 1 });
  const rng = sim.rng('bench.cpu');
  const host = hostCpus > 0 ? new HostCpus(sim, 'host', { cpus: hostCpus }) : undefined;
  let count = 0;
  for (let c = 0; c < 64; c++) {
    const cpu = new Cpu(sim, `cpu${c}`, { host });
    sim.spawn((function* (): Proc {
      while (count < OPS) {
        yield sim.compute(exp(rng, 1_000));
        count++;
        yield sim.sleep(exp(rng, 1_000));
      }
    })(), { name: 'thread', cpu });
  }
  sim.run();
  return count;
}

/** 64 threads, each a loop of one traced operation around a sleep: 64k spans when traced. */
function engineSpans(traced: boolean, ops = 64_000): number {
  const sim = new Sim({ seed: 1 });
  const session = traced ? traceBenchObserver!(sim, 'op') : null;
  for (let w = 0; w < 64; w++) {
    sim.spawn((function* (): Proc {
      for (let i = 0; i < ops / 64; i++) {
        const id = sim.opBegin('TDG.MEM.PAGE.ACCEPT', { gpa: '0x1000', size: 4096, level: 0 });
        yield sim.sleep(1000);
        sim.opEnd(id, { status: '0x0' });
      }
    })(), 'worker');
  }
  sim.run();
  if (session !== null) void session.finish();
  return ops;
}

/** M/M/4 as a source feeding a FIFO store that four server processes take customers from. */
function engineMmc(): number {
  const sim = new Sim({ seed: 1 });
  const arrivals = sim.rng('bench.mmc.arrivals');
  const service = sim.rng('bench.mmc.service');
  const queue = new Store<number>(sim, 'queue');
  let served = 0;
  for (let s = 0; s < 4; s++) {
    sim.spawn((function* (): Proc {
      for (;;) {
        yield queue.get();
        yield sim.sleep(exp(service, 1e6));
        served++;
      }
    })(), { name: 'server', daemon: true });
  }
  sim.spawn((function* (): Proc {
    for (let i = 0; i < OPS; i++) {
      yield sim.sleep(exp(arrivals, 1e6 / 3.2));
      queue.put(sim.now);
    }
  })(), 'source');
  sim.run();
  return served;
}

interface Row {
  workload: 'timeouts' | 'mutex' | 'mmc' | 'mutex_traced_op' | 'cpu' | 'cpu_host' | 'span_cost_op' | ModelCase['workload'];
  engine_ops_per_s: number;
  reference_ops_per_s: number;
  ratio: number;
  /** Model rows: wall time of one run and the process's peak resident memory after it. */
  wall_s?: number;
  rss_max_mb?: number;
  /** span_cost_op: CPU microseconds one span adds (traced minus untraced time, per span). */
  span_cost_us?: number;
}

/**
 * The model runs issue 4 sets budgets for (wall time on this kind of machine): events per
 * second of the whole model against the reference loop's events per second.
 */
interface ModelCase {
  workload: 'accept_boot_1tib_64vcpu_eager' | 'accept_boot_64gib_lazy_app16' | 'multi_vm_boot_8x16vcpu_16gib' | 'pamt_contention_10x4vcpu_16gib';
  experiment: string;
  params: Params;
  wall_budget_s: number;
}

const MODEL_CASES: ModelCase[] = [
  { workload: 'accept_boot_1tib_64vcpu_eager', experiment: 'accept-boot', params: { memory_gib: 1024, vcpus: 64, accept: 'eager' }, wall_budget_s: 30 },
  { workload: 'accept_boot_64gib_lazy_app16', experiment: 'accept-boot', params: { memory_gib: 64, app_gib: 16 }, wall_budget_s: 5 },
  // Host and VMs: 8 lazy TDs of 16 vCPUs and 16 GiB booting together on one host.
  { workload: 'multi_vm_boot_8x16vcpu_16gib', experiment: 'multi-vm-boot', params: { vms: 8, vcpus: 16, memory_gib: 16, accept: 'lazy' }, wall_budget_s: 10 },
  // Dynamic PAMT (issue 12): 10 eager TDs of 4 vCPUs and 16 GiB booting at once, pamt=refcount.
  { workload: 'pamt_contention_10x4vcpu_16gib', experiment: 'pamt-contention', params: { vms: 10, vcpus: 4, memory_gib: 16, pamt: 'refcount' }, wall_budget_s: 20 },
];

async function measureModel(c: ModelCase, referenceEventsPerSec: number): Promise<Row> {
  const { findExperiment } = await import('./registry.ts');
  const { defaultParams } = await import('./params.ts');
  const exp = findExperiment(c.experiment)!;
  const sim = new Sim({ seed: 1 });
  const t0 = process.hrtime.bigint();
  exp.run({ ...defaultParams(exp), ...c.params }, sim);
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const eventsPerSec = sim.eventsExecuted / wall;
  return {
    workload: c.workload,
    engine_ops_per_s: Math.round(eventsPerSec),
    reference_ops_per_s: Math.round(referenceEventsPerSec),
    ratio: Number((eventsPerSec / referenceEventsPerSec).toFixed(3)),
    wall_s: Number(wall.toFixed(2)),
    rss_max_mb: Math.round(process.resourceUsage().maxRSS / 1024),
  };
}

function time(fn: () => number): number {
  const t0 = process.hrtime.bigint();
  const ops = fn();
  const ns = Number(process.hrtime.bigint() - t0);
  return ops / (ns / 1e9);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function measure(workload: Row['workload'], engine: () => number, reference: () => number): Row {
  const e: number[] = [];
  const r: number[] = [];
  engine();
  reference(); // warm up both
  for (let i = 0; i < REPEATS; i++) {
    r.push(time(reference));
    e.push(time(engine));
  }
  // The ratio is the median of pairwise ratios (each pair measured back to back), which is
  // steadier than a ratio of medians when the machine's load drifts.
  const ratio = median(e.map((x, i) => x / r[i]!));
  return { workload, engine_ops_per_s: Math.round(median(e)), reference_ops_per_s: Math.round(median(r)), ratio: Number(ratio.toFixed(3)) };
}

const TARGETS: Record<'timeouts' | 'mutex' | 'mmc' | 'mutex_traced_op' | 'cpu' | 'cpu_host' | 'span_cost_op', number> = {
  timeouts: 0.8, mutex: 0.8, mmc: 0.6, mutex_traced_op: 0, cpu: 0, cpu_host: 0, span_cost_op: 0,
};

/**
 * The span workload traced ("engine") against itself untraced ("reference"), and the cost of a
 * span. Timed in CPU time (process.cpuUsage), not wall time: on a shared machine the wall clock
 * also counts other processes, and a span's cost is what this process spends on it.
 */
function measureSpanCost(): Row {
  const cpuOps = (fn: () => number): number => {
    const c0 = process.cpuUsage();
    const ops = fn();
    const c = process.cpuUsage(c0);
    return ops / ((c.user + c.system) / 1e6);
  };
  const e: number[] = [];
  const r: number[] = [];
  engineSpans(true);
  engineSpans(false);
  for (let i = 0; i < REPEATS; i++) {
    r.push(cpuOps(() => engineSpans(false)));
    e.push(cpuOps(() => engineSpans(true)));
  }
  const traced = median(e);
  const untraced = median(r);
  const perSpanS = 1 / traced - 1 / untraced;
  return {
    workload: 'span_cost_op', engine_ops_per_s: Math.round(traced), reference_ops_per_s: Math.round(untraced),
    ratio: Number((traced / untraced).toFixed(3)), span_cost_us: Number((perSpanS * 1e6).toFixed(2)),
  };
}

async function main(): Promise<void> {
  const json = process.argv.includes('--json');
  const rows = [
    measure('timeouts', engineTimeouts, () => referenceTimeouts(1000, 1000, 'bench.timeouts')),
    measure('mutex', () => engineMutex(), () => referenceMutex(64, OPS, 'bench.mutex')),
    measure('mmc', engineMmc, () => referenceMmc(3.2, 1, 4, OPS, 'bench.mmc')),
    measure('cpu', () => engineCpu(), () => referenceCpu(64, OPS, 'bench.cpu')),
    measure('cpu_host', () => engineCpu(64), () => referenceCpu(64, OPS, 'bench.cpu')),
  ];
  // The same mutex workload with the trace observer attached at `op` level (spans kept in
  // memory up to the default budget; no files): what tracing costs.
  traceBenchObserver = (await import('../traces/bench.ts')).traceBenchObserver;
  rows.push(measure('mutex_traced_op', () => engineMutex(true), () => referenceMutex(64, OPS, 'bench.mutex')));
  rows.push(measureSpanCost());
  if (!process.argv.includes('--no-models')) {
    const referenceEventsPerSec = rows[0]!.reference_ops_per_s; // the plain loop's timeouts: one event each
    for (const c of MODEL_CASES) rows.push(await measureModel(c, referenceEventsPerSec));
  }
  if (json) {
    process.stdout.write(`${JSON.stringify(rows)}\n`);
    return;
  }
  console.log(`${'workload'.padEnd(30)} engine ops/s   reference ops/s   ratio   target`);
  for (const r of rows) {
    const model = MODEL_CASES.find((c) => c.workload === r.workload);
    const target = model === undefined ? TARGETS[r.workload as keyof typeof TARGETS] : 0;
    const verdict = model !== undefined
      ? `wall ${r.wall_s} s (budget ${model.wall_budget_s} s), peak RSS ${r.rss_max_mb} MB`
      : r.span_cost_us !== undefined ? `${r.span_cost_us} us CPU per span (reference: the same run untraced)`
      : target === 0 ? '(no target)' : `>= ${target} ${r.ratio >= target ? 'ok' : 'BELOW'}`;
    console.log(`${r.workload.padEnd(30)} ${String(r.engine_ops_per_s).padStart(12)}   ${String(r.reference_ops_per_s).padStart(15)}   ${r.ratio.toFixed(3)}   ${verdict}`);
  }
}

await main();
