import { GiB, countMetric, measureMetric, prefixedMetrics, type Proc, type Sim } from '../sim/index.ts';
import { SIZE_1G, SIZE_2M } from '../models/arch/units.ts';
import { MEMORY_MAP_METRICS, MemoryMap, type MemRange, type MemoryKind } from '../models/host/memory_map.ts';
import { HOTPLUG_POLICIES, TDX_INIT_METRICS, TdxHostInit } from '../models/host/tdx_init.ts';
import { PAMT_MODES, PAMT_PAIR_PAGES } from '../models/tdx/pamt.ts';
import type { Cmr } from '../models/tdx/tdx_sys.ts';
import { enumParam, numberParam, type Experiment, type ParamsOf } from './experiment.ts';

/**
 * hotplug-init (Q3): memory hot-add around TDX module initialisation under four policies
 * (models/host/tdx_init.ts): a host boots with `host_memory_gib` of DRAM over `sockets` nodes
 * (contiguous, or fragmented by firmware holes), KVM initialises the module at `init_at_ms`
 * (TDH.SYS.INIT, LP.INIT, TDMRs, PAMT from host memory, TDH.SYS.CONFIG, KEY.CONFIG,
 * TDH.SYS.TDMR.INIT), `hotadd_gib` of memory of a kind is hot-added before, during (at the
 * first TDH.SYS.TDMR.INIT) or after initialisation, or at a seeded random time, then TDs take
 * guest memory from whatever the page allocator holds. Counted: TD memory outside the TDMRs
 * (unsafe), convertible memory refused (false refusals), initialisation failures by cause,
 * races with initialisation.
 */

export const HOTADD_TIMINGS = ['before', 'during', 'after', 'random'] as const;
/** convertible: a DIMM inside the CMRs, not in e820 at boot; cxl: a CXL.mem node; kmem: device-dax given to the allocator by dax/kmem. */
export const HOTADD_KINDS = ['convertible', 'cxl', 'kmem'] as const;
export const MAP_SHAPES = ['contiguous', 'fragmented'] as const;

export const hotplugInitParams = {
  policy: enumParam(HOTPLUG_POLICIES, 'merged', 'how hot-add and TDX initialisation are kept apart: none (seed era), reject_all, cmr_check (tdx_init_disable + CMRs), merged (upstream notifier)', '[linux:arch/x86/virt/vmx/tdx/tdx.c]'),
  timing: enumParam(HOTADD_TIMINGS, 'after', 'when the hot-add arrives: before initialisation, during it (at the first TDH.SYS.TDMR.INIT), after it, or at a seeded random time in [0, 2 x init_at_ms]'),
  kind: enumParam(HOTADD_KINDS, 'convertible', 'the hot-added memory: a convertible DIMM (in the CMRs), CXL memory or kmem (device-dax), both not convertible'),
  map: enumParam(MAP_SHAPES, 'contiguous', 'boot memory map: one range per node, or fragmented by holes_per_gib firmware holes of 2 MiB in every GiB'),
  host_memory_gib: numberParam({ default: 64, unit: 'GiB', description: 'boot DRAM, split over the sockets', min: 2, max: 4096, integer: true }),
  sockets: numberParam({ default: 2, unit: 'sockets', description: 'packages, one NUMA node each (TDH.SYS.KEY.CONFIG once per package)', min: 1, max: 8, integer: true }),
  host_cpus: numberParam({ default: 16, unit: 'CPUs', description: 'host CPUs (TDH.SYS.LP.INIT on each)', min: 1, max: 1024, integer: true }),
  hotadd_gib: numberParam({ default: 4, unit: 'GiB', description: 'memory hot-added (a multiple of 128 MiB blocks: whole GiB here)', min: 1, max: 1024, integer: true }),
  holes_per_gib: numberParam({ default: 8, unit: 'holes', description: 'map=fragmented: 2 MiB holes in every GiB of boot RAM (each a TDMR reserved area)', min: 1, max: 64, integer: true }),
  max_tdmrs: numberParam({ default: 64, unit: 'TDMRs', description: 'the module\'s maximum TDMRs (sysinfo)', min: 1, max: 1024, integer: true, source: '[tdx-host-rfc-2022-02]' }),
  max_reserved_per_tdmr: numberParam({ default: 16, unit: 'areas', description: 'the module\'s maximum reserved areas per TDMR (sysinfo)', min: 1, max: 1024, integer: true, source: '[tdx-host-rfc-2022-02]' }),
  host_busy_pct: numberParam({ default: 0, unit: '%', description: 'boot memory the host holds before initialisation, one 2 MiB block in every 100/pct (fragments alloc_contig_pages())', min: 0, max: 50, integer: true }),
  pamt: enumParam(PAMT_MODES, 'static', 'static PAMT, or Dynamic PAMT (PAMT_4K replaced by a bitmap and page pairs)'),
  init_at_ms: numberParam({ default: 1000, unit: 'ms', description: 'when KVM first needs TDX (tdx_enable())', min: 1, max: 1e6, integer: true }),
  tds: numberParam({ default: 2, unit: 'TDs', description: 'TDs started after initialisation and the hot-add, sharing all free memory', min: 1, max: 64, integer: true }),
};

type P = ParamsOf<typeof hotplugInitParams>;

/** The boot DRAM ranges, the hot-pluggable range and the CMRs for `p`. */
export function memoryLayout(p: P): { boot: MemRange[]; hotpluggable: MemRange[]; cmrs: Cmr[] } {
  const perNode = (p.host_memory_gib / p.sockets) * GiB;
  const boot: MemRange[] = [];
  const cmrs: Cmr[] = [];
  for (let n = 0; n < p.sockets; n++) {
    const start = n * perNode;
    cmrs.push({ base: start, size: perNode });
    if (p.map === 'contiguous') {
      boot.push({ start, bytes: perNode, node: n, kind: 'dram', convertible: true });
      continue;
    }
    // Holes of 2 MiB spread evenly in each GiB (firmware reservations the e820 map leaves out).
    const hole = SIZE_2M;
    const step = SIZE_1G / p.holes_per_gib;
    for (let g = start; g < start + perNode; g += SIZE_1G) {
      for (let h = 0; h < p.holes_per_gib; h++) {
        const a = g + h * step;
        const bytes = step - hole;
        if (bytes > 0) boot.push({ start: a, bytes, node: n, kind: 'dram', convertible: true });
      }
    }
  }
  const bootEnd = p.sockets * perNode;
  const hot = p.hotadd_gib * GiB;
  let range: MemRange;
  if (p.kind === 'convertible') {
    // A DIMM range of the last socket, inside its CMR, absent from e820 at boot.
    range = { start: bootEnd, bytes: hot, node: p.sockets - 1, kind: 'dram', convertible: true };
    cmrs[cmrs.length - 1]!.size += hot;
  } else {
    // A CPU-less node above RAM, not in any CMR.
    const start = Math.ceil((bootEnd + 16 * GiB) / (16 * GiB)) * 16 * GiB;
    range = { start, bytes: hot, node: p.sockets, kind: p.kind as MemoryKind, convertible: false };
  }
  return { boot, hotpluggable: [range], cmrs };
}

export const hotplugInit: Experiment<typeof hotplugInitParams> = {
  name: 'hotplug-init',
  question: 'Q3: how must memory hot-add interact with TDX module initialisation so that no TD page lands on memory the module does not cover, without refusing memory that would have been safe?',
  params: hotplugInitParams,
  metrics: {
    outcome_unsafe: countMetric('flag', '1 if a TD got memory outside the TDMRs (no PAMT)'),
    outcome_refused_safe: countMetric('flag', '1 if convertible (safe) memory was refused'),
    outcome_init_failed: countMetric('flag', '1 if module initialisation failed (no TDs at all)'),
    unsafe_td_bytes: countMetric('bytes', 'TD memory outside the TDMRs or in reserved areas'),
    td_safe_bytes: countMetric('bytes', 'TD memory the module covers (memory usable by TDs)'),
    host_usable_bytes: countMetric('bytes', 'memory the page allocator holds at the end (boot RAM and onlined blocks)'),
    false_refused_bytes: countMetric('bytes', 'convertible memory refused'),
    init_ms: measureMetric('ms', 'tdx_enable() duration'),
    tdmr_init_ms: measureMetric('ms', 'init_tdmrs(): every TDH.SYS.TDMR.INIT'),
    pamt_static_bytes: countMetric('bytes', 'PAMT allocated at initialisation from host memory'),
    pamt_dynamic_bytes: countMetric('bytes', 'Dynamic PAMT page pairs for the TD memory (8 KiB per 2 MiB mapped 4K), 0 with static PAMT'),
    hotadd_order: countMetric('order', 'where the hot-add landed: 0 before initialisation built its memory list, 1 while it ran, 2 after'),
    hotadd_at_ms: measureMetric('ms', 'when the hot-add arrived'),
    ...prefixedMetrics('tdx_init', TDX_INIT_METRICS),
    ...prefixedMetrics('host.memory_map', MEMORY_MAP_METRICS),
  },
  check(p) {
    if (p.host_memory_gib % p.sockets !== 0) return `host_memory_gib (${p.host_memory_gib}) must be a multiple of sockets (${p.sockets}) GiB`;
    if (p.host_cpus % p.sockets !== 0) return `host_cpus (${p.host_cpus}) must be a multiple of sockets (${p.sockets})`;
    if (p.map === 'fragmented' && (SIZE_1G / p.holes_per_gib) % SIZE_2M !== 0) return `holes_per_gib (${p.holes_per_gib}) must divide 1 GiB into 2 MiB-aligned pieces (a power of two up to 64)`;
    return undefined;
  },
  run(p, sim) {
    return runHotplugInit(p, sim).metrics;
  },
};

export interface HotplugInitRun {
  metrics: { metrics: Record<string, number> };
  init: TdxHostInit;
  map: MemoryMap;
}

/** Builds and runs one scenario; the model objects are returned for tests. */
export function runHotplugInit(p: P, sim: Sim): HotplugInitRun {
  const layout = memoryLayout(p);
  const map = new MemoryMap(sim, { boot: layout.boot, hotpluggable: layout.hotpluggable });
  const init = new TdxHostInit(sim, map, {
    policy: p.policy, pamtMode: p.pamt, cpus: p.host_cpus, packages: p.sockets,
    sysinfo: { cmrs: layout.cmrs, maxTdmrs: p.max_tdmrs, maxReservedPerTdmr: p.max_reserved_per_tdmr },
  });
  // The host's own memory before initialisation: one 2 MiB block in every 100/pct.
  if (p.host_busy_pct > 0) {
    const owner = map.memory.registerOwner('host');
    const stride = Math.max(2, Math.round(100 / p.host_busy_pct));
    let k = 0;
    for (const r of layout.boot) {
      for (let a = r.start; a < r.start + r.bytes; a += SIZE_2M) if (k++ % stride === 0) map.memory.takeRange(owner, 'kernel', a, SIZE_2M);
    }
  }
  const initAt = p.init_at_ms * 1e6;
  const initProc = sim.spawn((function* (): Proc<number> {
    yield sim.sleep(initAt);
    return yield* init.tdxEnable();
  })(), { name: 'host/kvm_tdx_init', cpu: init.cpu, service: 'kvm' });
  let hotAddAt = 0;
  const hotProc = sim.spawn((function* (): Proc<void> {
    if (p.timing === 'before') yield sim.sleep(initAt / 2);
    else if (p.timing === 'random') yield sim.sleep(sim.rng('host/hotplug/time').int(2 * initAt));
    else if (p.timing === 'during') {
      yield sim.sleep(initAt);
      yield init.tdmrInitStarted.wait();
    } else {
      yield initProc.join();
      yield sim.sleep(10e6);
    }
    hotAddAt = sim.now;
    yield* init.hotAdd(0);
  })(), { name: 'host/kacpi_hotplug', cpu: map.cpu, service: 'kvm' });
  sim.run();
  sim.finishRun();
  void hotProc;
  // TDs take guest memory from whatever the allocator holds, 2 MiB at a time, TD k preferring node k.
  const nodes = map.memory.nodeCount;
  let safe = 0;
  let unsafe = 0;
  let pairs = 0;
  if (init.status === 'initialized') {
    const pamt = init.module!.pamt;
    const owners = Array.from({ length: p.tds }, (_, k) => map.memory.registerOwner(`vm${k + 1}`));
    let k = 0;
    for (;;) {
      const hpa = map.memory.allocBlocks(owners[k % p.tds]!, 'gmem', 9, k % nodes);
      if (hpa === null) break;
      k++;
      if (init.tdPageSafe(hpa)) {
        safe += SIZE_2M;
        if (p.pamt === 'static') pamt.setRangeInUse(hpa, 512);
        else pairs++;
      } else {
        unsafe += SIZE_2M;
      }
    }
  }
  init.checkInvariants();
  map.checkInvariants();
  const out: Record<string, number> = {};
  init.metrics('tdx_init', out);
  map.metrics('host.memory_map', out);
  const h = init.hotAdds[0];
  const falseRefused = out['tdx_init.false_refused_bytes']!;
  return {
    init,
    map,
    metrics: {
      metrics: {
        outcome_unsafe: unsafe > 0 ? 1 : 0,
        outcome_refused_safe: falseRefused > 0 ? 1 : 0,
        outcome_init_failed: init.status === 'error' ? 1 : 0,
        unsafe_td_bytes: unsafe,
        td_safe_bytes: safe,
        host_usable_bytes: map.onlineBytes,
        false_refused_bytes: falseRefused,
        init_ms: init.initNs / 1e6,
        tdmr_init_ms: out['tdx_init.tdmr_init_ns']! / 1e6,
        pamt_static_bytes: out['tdx_init.pamt_bytes']!,
        pamt_dynamic_bytes: pairs * PAMT_PAIR_PAGES * 4096,
        hotadd_order: h === undefined ? 0 : h.order === 'before_init' ? 0 : h.order === 'during_init' ? 1 : 2,
        hotadd_at_ms: hotAddAt / 1e6,
        ...out,
      },
    },
  };
}

