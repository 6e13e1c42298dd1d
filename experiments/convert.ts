import { GiB, MiB, MS, US, countMetric, measureMetric, type Proc } from '../sim/index.ts';
import { GuestMemEncrypt, SET_MEMORY_METRICS } from '../models/guest/set_memory.ts';
import { SWIOTLB_METRICS, Swiotlb, swiotlbPoolBytes } from '../models/guest/swiotlb.ts';
import { Vm } from '../models/vm/vm.ts';
import { checkConversionAgreement, tdpStats } from '../models/vm/conversion_check.ts';
import { DmaWorkload } from '../models/workloads/dma_driver.ts';
import { prefixedMetrics } from '../sim/index.ts';
import { booleanParam, enumParam, numberParam, type Experiment } from './experiment.ts';
import { buildHost, checkHostParams, finishHost, hostParams, ownerMetricSpecs, vmParams } from './wiring.ts';

/**
 * convert (Q2): a confidential guest's private/shared conversions and what they cost the host.
 * Boot accepts the SWIOTLB pool's and the DMA arena's memory and decrypts the pool
 * (swiotlb_update_mem_attributes()); then a driver allocates and frees coherent buffers
 * (converted per allocation unless dma_alloc_from_swiotlb) and an I/O stream bounces through the
 * pool. Every conversion goes guest -> KVM (MapGPA in 2 MiB chunks / PSC) -> the VMM's
 * kvm_convert_memory() (KVM_SET_MEMORY_ATTRIBUTES, punch hole or discard) -> the TDX module or
 * the RMP; host memory is counted per backing over time.
 */

const convertParams = {
  ...hostParams,
  snp_prefault: vmParams.snp_prefault,
  vmm_discard: vmParams.vmm_discard,
  memory_gib: numberParam({ default: 4, unit: 'GiB', description: 'guest RAM', min: 1, max: 256, integer: true }),
  vcpus: numberParam({ default: 4, unit: 'vCPUs', description: 'guest vCPUs', min: 1, max: 64, integer: true }),
  hz: numberParam({ default: 1000, unit: 'Hz', description: 'guest timer: an interrupt pending between MapGPA chunks makes KVM answer TDVMCALL_STATUS_RETRY', min: 0, max: 10000, integer: true, source: '[distro-kernel-config]' }),
  swiotlb_percent: enumParam(['6', '8'] as const, '6', 'SWIOTLB pool as % of RAM: 6 (upstream, cap 1 GiB) or 8 (the RFC, cap 1.25 GiB)', '[linux:arch/x86/mm/mem_encrypt.c] [annapurve-2024-01-swiotlb-2m]'),
  swiotlb_align: enumParam(['4k', '2m'] as const, '4k', 'SWIOTLB pools page aligned (upstream) or 2 MiB aligned (the RFC)', '[annapurve-2024-01-swiotlb-2m]'),
  dma_alloc_from_swiotlb: booleanParam(false, 'dma_alloc_coherent() from the SWIOTLB pool (the RFC) instead of converting page-allocator pages per allocation', '[annapurve-2024-01-swiotlb-2m] [linux:kernel/dma/direct.c]'),
  dynamic_swiotlb: booleanParam(false, 'CONFIG_SWIOTLB_DYNAMIC: transient pools and new pools at runtime, converted then', '[linux:kernel/dma/swiotlb.c]'),
  shared_backing: enumParam(['anon', 'shmem', 'hugetlb2m', 'hugetlb1g'] as const, 'anon', 'the VMM\'s backing of shared memory', '[qemu:accel/kvm/kvm-all.c kvm_convert_memory]'),
  conversion_backing: enumParam(['separate', 'in_place'] as const, 'separate', 'separate backings (upstream: guest_memfd + shared_backing) or the unmerged in-place conversion (one guest_memfd for both)', '[ackerley-2025-gmem-hugetlb]'),
  coherent_per_s: numberParam({ default: 2000, unit: '/s', description: 'dma_alloc_coherent() rate', min: 0, max: 1e6 }),
  coherent_kib: numberParam({ default: 4, unit: 'KiB', description: 'coherent buffer size', min: 4, max: 256, integer: true }),
  coherent_lifetime_ms: numberParam({ default: 20, unit: 'ms', description: 'how long a coherent buffer lives', min: 0, max: 10000 }),
  io_mib_per_s: numberParam({ default: 400, unit: 'MiB/s', description: 'I/O bounced through SWIOTLB', min: 0, max: 100000 }),
  io_kib: numberParam({ default: 64, unit: 'KiB', description: 'bytes per I/O (at most IO_TLB_SEGSIZE x 2 KiB = 256 KiB)', min: 2, max: 256, integer: true }),
  io_latency_us: numberParam({ default: 500, unit: 'us', description: 'device time per I/O (slots held meanwhile)', min: 0, max: 1e7 }),
  arena_mib: numberParam({ default: 256, unit: 'MiB', description: 'guest memory the page allocator gives DMA users (coherent buffers, dynamic pools)', min: 16, max: 65536, integer: true }),
  duration_ms: numberParam({ default: 200, unit: 'ms', description: 'how long the driver and the I/O run after boot', min: 0, max: 100000 }),
  sample_ms: numberParam({ default: 5, unit: 'ms', description: 'host footprint sampling interval', min: 0.1, max: 10000 }),
};

export const convert: Experiment<typeof convertParams> = {
  name: 'convert',
  question: 'Q2: at what granularity should a confidential guest convert memory between private and shared (4K vs 2M, SWIOTLB 6% vs 8%, dma_alloc from SWIOTLB, dynamic pools), and what does the choice cost the host (exits, latency, kicks, mmu_lock, double allocation, page tables)?',
  params: convertParams,
  metrics: {
    'conversions.4k': countMetric('calls', 'conversions of exactly 4 KiB'),
    'conversions.sub_2m': countMetric('calls', 'conversions between 4 KiB and 2 MiB'),
    'conversions.2m_plus': countMetric('calls', 'conversions of 2 MiB or more'),
    warn_non_2m: countMetric('warnings', 'conversions not 2 MiB aligned (the RFC\'s WARN)'),
    vmm_exits: countMetric('exits', 'KVM_HC_MAP_GPA_RANGE exits to the VMM'),
    'latency_ns.p50': measureMetric('ns', 'conversion latency, median'),
    'latency_ns.p99': measureMetric('ns', 'conversion latency, 99th percentile'),
    'latency_ns.max': measureMetric('ns', 'conversion latency, longest'),
    kick_lost_ns: measureMetric('ns', 'vCPU time lost to kicks (remote TLB flushes, TDH.MEM.TRACK), all vCPUs'),
    kicks: countMetric('IPIs', 'vCPUs kicked'),
    mmu_lock_write_hold_ns: measureMetric('ns', 'mmu_lock write hold time of conversions'),
    mmu_lock_write_faults_delayed: countMetric('acquisitions', 'faults that waited behind those'),
    double_bytes_peak: countMetric('bytes', 'double-allocated bytes (guest_memfd and shared backing for one GPA), peak'),
    double_bytes_end: countMetric('bytes', 'double-allocated bytes at the end'),
    private_bytes_end: countMetric('bytes', 'guest_memfd bytes at the end'),
    shared_bytes_end: countMetric('bytes', 'shared backing bytes at the end'),
    footprint_bytes_peak: countMetric('bytes', 'host memory of the VM (private + shared + page tables + control), peak of the samples'),
    footprint_bytes_end: countMetric('bytes', 'host memory of the VM at the end'),
    'ept.private_4k': countMetric('entries', 'private 4K leaves (S-EPT or NPT)'),
    'ept.shared_4k': countMetric('entries', 'shared 4K leaves (shared EPT or NPT)'),
    'ept.shared_2m': countMetric('entries', 'shared 2M leaves'),
    'ept.pt_pages': countMetric('pages', 'last-level page-table pages (EPT/NPT)'),
    'ept.pt_bytes': countMetric('bytes', 'EPT/NPT page-table bytes, all levels'),
    'swiotlb.pool_bytes': countMetric('bytes', 'SWIOTLB pools at the end'),
    'swiotlb.peak_used_bytes': countMetric('bytes', 'SWIOTLB slots in use, peak'),
    io_failures: countMetric('I/Os', 'I/Os failed for lack of bounce space'),
    boot_done_ms: measureMetric('ms', 'virtual time at which boot decrypted the pool'),
    ...prefixedMetrics('vm1.guest.set_memory', SET_MEMORY_METRICS),
    ...prefixedMetrics('vm1.guest.swiotlb', SWIOTLB_METRICS),
    'dma.*': countMetric('count', 'the workload\'s counters (coherent allocations and failures, I/Os and failures, arena exhaustion)'),
    ...ownerMetricSpecs,
  },
  check(p) {
    if (p.arena_mib * MiB >= p.memory_gib * GiB / 2) return `arena_mib must be less than half of guest RAM (got arena_mib=${p.arena_mib}, memory_gib=${p.memory_gib})`;
    return checkHostParams(p, [{ vcpus: p.vcpus, memoryBytes: p.memory_gib * GiB }]);
  },
  run(p, sim) {
    const memoryBytes = p.memory_gib * GiB;
    // Room for double allocation: the shared backing may hold as much as the arena and pool again (hugetlb 1G rounds up).
    const host = buildHost(sim, p, p.vcpus, memoryBytes + (p.shared_backing === 'hugetlb1g' ? 3 * GiB : GiB));
    const vm = new Vm(sim, host, { bare: { vcpus: p.vcpus, gpaBytes: memoryBytes }, snpPrefault: p.snp_prefault, vmmDiscard: p.vmm_discard });
    vm.enableConversions(p.conversion_backing === 'in_place' ? 'in_place' : p.shared_backing, p.hz > 0 ? Math.round(1e9 / p.hz) : 0);
    const enc = new GuestMemEncrypt(sim, vm, vm.kind, memoryBytes);
    const swiotlb = new Swiotlb(sim, `${vm.name}/swiotlb`, p.vcpus, p.dynamic_swiotlb);
    const poolBytes = swiotlbPoolBytes(memoryBytes, Number(p.swiotlb_percent), p.swiotlb_percent === '8' ? 1.25 * GiB : GiB);
    const work = new DmaWorkload(sim, vm, vm.vcpus, enc, swiotlb, {
      memoryBytes, poolBytes, align: p.swiotlb_align, dmaAllocFromSwiotlb: p.dma_alloc_from_swiotlb, dynamic: p.dynamic_swiotlb,
      arenaBytes: p.arena_mib * MiB,
      coherent: { ratePerSec: p.coherent_per_s, bytes: p.coherent_kib * 1024, lifetimeNs: Math.round(p.coherent_lifetime_ms * MS) },
      io: { ratePerSec: p.io_kib > 0 ? (p.io_mib_per_s * MiB) / (p.io_kib * 1024) : 0, bytes: p.io_kib * 1024, latencyNs: Math.round(p.io_latency_us * US) },
      durationNs: Math.round(p.duration_ms * MS), streamPrefix: `vm.${vm.record.id}.`, threadPrefix: `${vm.name}/`,
    });
    work.start();
    const t: number[] = [];
    const priv: number[] = [];
    const shared: number[] = [];
    const dbl: number[] = [];
    const total: number[] = [];
    const sampleNs = Math.round(p.sample_ms * MS);
    const stopAfter = Math.round(p.duration_ms * MS + p.coherent_lifetime_ms * MS + p.io_latency_us * US) + 20 * MS;
    function sample(): void {
      const f = vm.conversionFootprint();
      t.push(sim.now / 1e6);
      priv.push(f.privateBytes / MiB);
      shared.push(f.sharedBytes / MiB);
      dbl.push(f.doubleBytes / MiB);
      total.push(host.memory.usedBytesBy(vm.record.owner) / MiB);
    }
    sim.spawn((function* (): Proc<void> {
      for (;;) {
        sample();
        if (work.bootDoneNs >= 0 && sim.now >= work.bootDoneNs + stopAfter) return;
        yield sim.sleep(sampleNs);
      }
    })(), { name: `${vm.name}/footprint-sampler` });
    sim.run();
    sim.finishRun();
    sample();
    checkConversionAgreement(vm, enc);
    enc.checkInvariants();
    swiotlb.checkInvariants();
    const owners = finishHost(host, [vm]);
    enc.metrics(`${vm.name}.guest.set_memory`, owners);
    swiotlb.metrics(`${vm.name}.guest.swiotlb`, owners);
    const a = `${vm.name}.kvm.attr`;
    const tdp = tdpStats(vm);
    const end = vm.conversionFootprint();
    const ptBytes = (tdp.ptPages + tdp.upperPages) * 4096;
    const c = work.counters;
    return {
      metrics: {
        'conversions.4k': enc.counters.c4k,
        'conversions.sub_2m': enc.counters.sub2m,
        'conversions.2m_plus': enc.counters.c2m,
        warn_non_2m: enc.counters.warnNon2m,
        vmm_exits: vm.vmm.mapGpaRangeExits,
        'latency_ns.p50': owners[`${vm.name}.guest.set_memory.latency_ns.p50`]!,
        'latency_ns.p99': owners[`${vm.name}.guest.set_memory.latency_ns.p99`]!,
        'latency_ns.max': owners[`${vm.name}.guest.set_memory.latency_ns.max`]!,
        kick_lost_ns: owners[`${a}.kick_lost_ns`]!,
        kicks: owners[`${a}.kicks`]!,
        mmu_lock_write_hold_ns: owners[`${a}.mmu_lock_write.hold_ns`]!,
        mmu_lock_write_faults_delayed: owners[`${a}.mmu_lock_write.faults_delayed`]!,
        double_bytes_peak: Math.max(...dbl) * MiB,
        double_bytes_end: end.doubleBytes,
        private_bytes_end: end.privateBytes,
        shared_bytes_end: end.sharedBytes,
        footprint_bytes_peak: Math.max(...total) * MiB,
        footprint_bytes_end: host.memory.usedBytesBy(vm.record.owner),
        'ept.private_4k': tdp.private4k,
        'ept.shared_4k': tdp.shared4k,
        'ept.shared_2m': tdp.shared2m,
        'ept.pt_pages': tdp.ptPages,
        'ept.pt_bytes': ptBytes,
        'swiotlb.pool_bytes': swiotlb.poolBytes(),
        'swiotlb.peak_used_bytes': swiotlb.peakSlots * 2048,
        io_failures: c.ioFailures,
        boot_done_ms: work.bootDoneNs / 1e6,
        'dma.coherent_allocs': c.coherentAllocs,
        'dma.coherent_failures': c.coherentFailures,
        'dma.ios': c.ios,
        'dma.io_failures': c.ioFailures,
        'dma.arena_failures': c.arenaFailures,
        ...owners,
      },
      curves: {
        'footprint.total': { x: t, y: total, xUnit: 'ms', yUnit: 'MiB', xLabel: 'virtual time', yLabel: 'host memory of the VM' },
        'footprint.private': { x: t, y: priv, xUnit: 'ms', yUnit: 'MiB', xLabel: 'virtual time', yLabel: 'guest_memfd' },
        'footprint.shared': { x: t, y: shared, xUnit: 'ms', yUnit: 'MiB', xLabel: 'virtual time', yLabel: 'shared backing' },
        'footprint.double': { x: t, y: dbl, xUnit: 'ms', yUnit: 'MiB', xLabel: 'virtual time', yLabel: 'double-allocated' },
      },
    };
  },
};
