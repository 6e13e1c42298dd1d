import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { Cpu, GiB, MiB, Sim, type Proc } from '../../sim/index.ts';
import { acceptBoot as acceptBootTyped } from '../../experiments/accept_boot.ts';
import { defaultParams } from '../../experiments/params.ts';
import type { Experiment, Params } from '../../experiments/experiment.ts';
import { defaultTraceOptions, startTracing } from '../../traces/index.ts';
import type { JaegerSpan, JaegerTrace } from '../../traces/jaeger_json.ts';
import { acceptInParallel, tdxVm, type TestVmOptions } from '../models/host/fixture.ts';

/**
 * The chain a user follows in Jaeger across actors: a guest TDCALL that exits to KVM, which runs
 * SEAMCALLs in the TDX module (SNP: a VMGEXIT to KVM, the VMM and RMPUPDATE, then PVALIDATE),
 * on the default aggregated host path as well as the per-page one, and the BUSY answers and
 * retries on the way.
 */

/** A trace read back from its .jaeger.json, with the span tree made walkable. */
class Trace {
  readonly byId: Map<string, JaegerSpan>;
  constructor(readonly trace: JaegerTrace) {
    this.byId = new Map(trace.spans.map((s) => [s.spanID, s]));
  }
  named(name: string): JaegerSpan[] {
    return this.trace.spans.filter((s) => s.operationName === name);
  }
  service(s: JaegerSpan): string {
    return this.trace.processes[s.processID]!.serviceName;
  }
  services(): string[] {
    return [...new Set(Object.values(this.trace.processes).map((p) => p.serviceName))].sort();
  }
  parent(s: JaegerSpan): JaegerSpan | undefined {
    const ref = s.references.find((r) => r.refType === 'CHILD_OF');
    return ref === undefined ? undefined : this.byId.get(ref.spanID);
  }
  children(s: JaegerSpan): JaegerSpan[] {
    return this.trace.spans.filter((c) => c.references.some((r) => r.refType === 'CHILD_OF' && r.spanID === s.spanID));
  }
  /** `service:name` of the span and its ancestors up to the root. */
  chain(s: JaegerSpan): string[] {
    const out: string[] = [];
    for (let p: JaegerSpan | undefined = s; p !== undefined; p = this.parent(p)) out.push(`${this.service(p)}:${p.operationName}`);
    return out;
  }
  /** Each span's events: name plus fields. */
  events(s: JaegerSpan): Record<string, string | number | boolean>[] {
    return s.logs.map((l) => Object.fromEntries(l.fields.map((f) => [f.key, f.value])));
  }
}

function tag(s: JaegerSpan, key: string): string | number | boolean | undefined {
  return s.tags.find((t) => t.key === key)?.value;
}

/** s lies inside parent in time (Jaeger times are whole microseconds, floored from ns). */
function nestedInTime(s: JaegerSpan, parent: JaegerSpan): boolean {
  return s.startTime >= parent.startTime && s.startTime + s.duration <= parent.startTime + parent.duration;
}

function tempJaegerFile(): string {
  return join(mkdtempSync(join(tmpdir(), 'cvmsim-accept-chain-')), 'run.jaeger.json');
}

/** accept-boot as the registry holds it: run() takes the CLI's checked parameters. */
const acceptBoot: Experiment = acceptBootTyped;

function params(over: Record<string, unknown>): Params {
  return { ...defaultParams(acceptBoot), memory_gib: 1, vcpus: 2, ...over } as Params;
}

/** accept-boot through its experiment run(), traced to a temp .jaeger.json. */
async function tracedAcceptBoot(over: Record<string, unknown>, seed = 1) {
  const p = params(over);
  const file = tempJaegerFile();
  const sim = new Sim({ seed });
  const session = startTracing(sim, { experiment: acceptBoot.name, params: p, seed }, { ...defaultTraceOptions, files: [file] });
  const result = acceptBoot.run(p, sim);
  const summary = await session.finish();
  expect(summary.droppedSpans).toBe(0);
  const trace = new Trace(JSON.parse(readFileSync(file, 'utf8')).data[0] as JaegerTrace);
  return { trace, metrics: result.metrics, fingerprint: sim.fingerprint.hex() };
}

function untracedAcceptBoot(over: Record<string, unknown>, seed = 1) {
  const sim = new Sim({ seed });
  const result = acceptBoot.run(params(over), sim);
  return { metrics: result.metrics, fingerprint: sim.fingerprint.hex() };
}

const SUCCESS = '0x0000000000000000';

type TracedBoot = Awaited<ReturnType<typeof tracedAcceptBoot>>;

describe('accept-boot on TDX, aggregated host path: TDCALL -> EPT violation in KVM -> SEAMCALLs in the TDX module', () => {
  let run: TracedBoot;
  let t: Trace;
  let augs: JaegerSpan[];
  beforeAll(async () => {
    run = await tracedAcceptBoot({ platform: 'tdx' });
    t = run.trace;
    augs = t.named('TDH.MEM.PAGE.AUG');
  });

  it('lists the guest, KVM and the TDX module as services', () => {
    expect(t.services()).toEqual(expect.arrayContaining(['cvmsim', 'guest/vm1', 'kvm', 'tdx-module']));
  });

  it('every TDH.MEM.PAGE.AUG nests in tdx_handle_ept_violation (kvm) inside the guest TDG.MEM.PAGE.ACCEPT, down from accept_memory', () => {
    expect(augs.length).toBeGreaterThan(0);
    for (const aug of augs) {
      expect(t.chain(aug).slice(0, 3)).toEqual(['tdx-module:TDH.MEM.PAGE.AUG', 'kvm:tdx_handle_ept_violation', 'guest/vm1:TDG.MEM.PAGE.ACCEPT']);
      expect(nestedInTime(aug, t.parent(aug)!)).toBe(true);
      expect(nestedInTime(t.parent(aug)!, t.parent(t.parent(aug)!)!)).toBe(true);
    }
    // The runtime accepts come down from accept_memory() (the firmware's come from TDVF).
    const fromKernel = augs.map((a) => t.chain(a)).filter((c) => c.includes('guest/vm1:accept_memory'));
    expect(fromKernel.length).toBeGreaterThan(0);
    for (const c of fromKernel) expect(c.slice(3, 5)).toEqual(['guest/vm1:arch_accept_memory', 'guest/vm1:accept_memory']);
  });

  it('the spans carry aggregated counts that agree along the chain', () => {
    const added = new Map<string, number>();
    for (const aug of augs) {
      const exit = t.parent(aug)!;
      const accept = t.parent(exit)!;
      const n = tag(aug, 'cvmsim.aggregated.count');
      expect(n).toBeGreaterThan(1);
      expect(tag(exit, 'cvmsim.aggregated.count')).toBe(n);
      expect(tag(accept, 'exits')).toBe(n);
      expect(tag(accept, 'cvmsim.aggregated.count') as number).toBeGreaterThanOrEqual(n as number);
      // The AUG span covers the exits' stall, which holds the SEAMCALLs' own time.
      expect(tag(aug, 'cvmsim.aggregated.ns') as number).toBeLessThanOrEqual((aug.duration + 1) * 1000);
      expect(tag(exit, 'host.clear_bytes')).toBeGreaterThan(0);
      for (const add of t.children(exit).filter((c) => c.operationName === 'TDH.MEM.SEPT.ADD')) {
        expect(t.service(add)).toBe('tdx-module');
        const pages = String(tag(add, 'page')).split(',');
        expect(tag(add, 'cvmsim.aggregated.count')).toBe(pages.length);
        // Laid out inside the exits' stall: SEPT.ADD at the first exit, then the AUGs.
        expect(add.duration).toBeGreaterThan(0);
        expect(add.startTime + add.duration).toBeLessThanOrEqual(aug.startTime + 1);
        expect(add.startTime).toBeGreaterThanOrEqual(exit.startTime);
        for (const kind of pages) added.set(kind, (added.get(kind) ?? 0) + 1);
      }
    }
    // Every S-EPT page came from an aggregated step (4K S-EPT: every run aggregates): a PT page
    // per 2 MiB region the AUGs touched, a PD page per 1 GiB, one PDPT page.
    const gpas = augs.map((a) => Number(tag(a, 'gpa')));
    expect(added.get('pt')).toBe(new Set(gpas.map((g) => Math.floor(g / (2 * MiB)))).size);
    expect(added.get('pd')).toBe(new Set(gpas.map((g) => Math.floor(g / GiB))).size);
    expect(added.get('pdpt')).toBe(1);
  });

  it('the accepts in the trace add up to the memory the guest accepted', () => {
    let bytes = 0;
    for (const a of t.named('TDG.MEM.PAGE.ACCEPT')) if (tag(a, 'status') === SUCCESS) bytes += tag(a, 'size') as number;
    expect(bytes).toBe(run.metrics['accepted_gib']! * GiB);
  });

  it('tracing changes nothing: an untraced run of the seed has the same metrics and fingerprint', () => {
    const plain = untracedAcceptBoot({ platform: 'tdx' });
    expect(run.metrics).toEqual(plain.metrics);
    expect(run.fingerprint).toBe(plain.fingerprint);
  });
});

describe('accept-boot on SEV-SNP, upstream aggregated host path: VMGEXIT (PSC) -> snp_begin_psc -> KVM_HC_MAP_GPA_RANGE; PVALIDATE -> NPF -> RMPUPDATE', () => {
  let run: TracedBoot;
  let t: Trace;
  beforeAll(async () => {
    run = await tracedAcceptBoot({ platform: 'snp' });
    t = run.trace;
  });

  it('lists the guest, KVM, the VMM and the SNP firmware as services', () => {
    expect(t.services()).toEqual(expect.arrayContaining(['cvmsim', 'guest/vm1', 'kvm', 'vmm/vm1', 'snp-firmware']));
  });

  it('the PSC only reaches the VMM (its discard fires the MMU notifier); RMPUPDATE (snp-firmware) nests in the NPF (kvm) that a guest PVALIDATE takes', () => {
    const psc = t.named('snp_begin_psc').filter((r) => t.chain(r).includes('guest/vm1:accept_memory'));
    expect(psc.length).toBeGreaterThan(0);
    for (const p of psc) {
      expect(t.children(p).some((c) => c.operationName === 'RMPUPDATE')).toBe(false);
      expect(t.children(p).some((c) => c.operationName === 'KVM_HC_MAP_GPA_RANGE' && t.service(c) === 'vmm/vm1')).toBe(true);
    }
    expect(t.named('ram_block_discard_range').length).toBeGreaterThan(0);
    const fromKernel = t.named('RMPUPDATE').filter((r) => t.chain(r).includes('guest/vm1:accept_memory'));
    expect(fromKernel.length).toBeGreaterThan(0);
    for (const r of fromKernel) {
      const chain = t.chain(r);
      expect(chain[0]).toBe('snp-firmware:RMPUPDATE');
      expect(chain[1]).toBe('kvm:NPF');
      expect(chain[2]).toBe('guest/vm1:PVALIDATE');
      expect(nestedInTime(r, t.parent(r)!)).toBe(true);
    }
    // A 2M entry on 4K folios: the 2M PVALIDATE faults its first page in, the fallback's 511 4K faults are one aggregated step.
    expect(fromKernel.some((r) => tag(r, 'cvmsim.aggregated.count') === 511)).toBe(true);
  });

  it('PVALIDATE follows the VMGEXIT; a 2M PVALIDATE answers SIZEMISMATCH and its 512 4K PVALIDATEs nest in it (size: bytes of the whole span)', () => {
    const pvalidates = t.named('PVALIDATE').filter((p) => t.chain(p).includes('guest/vm1:accept_memory'));
    const huge = pvalidates.filter((p) => tag(p, 'size') === 2 * MiB && tag(p, 'cvmsim.aggregated.count') === undefined);
    expect(huge.length).toBeGreaterThan(0);
    for (const p of huge) {
      expect(t.parent(p)!.operationName).toBe('arch_accept_memory');
      expect(t.events(p)).toContainEqual(expect.objectContaining({ event: 'PVALIDATE_FAIL_SIZEMISMATCH', status: '0x6', 'status.name': 'PVALIDATE_FAIL_SIZEMISMATCH' }));
      const fallback = t.children(p).filter((c) => c.operationName === 'PVALIDATE');
      expect(fallback.map((c) => [c.operationName, tag(c, 'size'), tag(c, 'size.each'), tag(c, 'cvmsim.aggregated.count')])).toEqual([['PVALIDATE', 2 * MiB, 4096, 512]]);
      expect(nestedInTime(fallback[0]!, p)).toBe(true);
    }
  });

  it('tracing changes nothing: an untraced run of the seed has the same metrics and fingerprint', () => {
    const plain = untracedAcceptBoot({ platform: 'snp' });
    expect(run.metrics).toEqual(plain.metrics);
    expect(run.fingerprint).toBe(plain.fingerprint);
  });
});

describe('accept-boot on SEV-SNP with the VMM prefaulting on PSC (snp_prefault=true): RMPUPDATE inside the PSC exit', () => {
  it('RMPUPDATE (snp-firmware) nests in snp_begin_psc (kvm) in the guest VMGEXIT, beside the exit to the VMM', async () => {
    const { trace: t } = await tracedAcceptBoot({ platform: 'snp', snp_prefault: true, memory_gib: 2 });
    const fromKernel = t.named('RMPUPDATE').filter((r) => t.chain(r).includes('guest/vm1:accept_memory'));
    expect(fromKernel.length).toBeGreaterThan(0);
    for (const r of fromKernel) {
      expect(t.chain(r).slice(0, 5)).toEqual(['snp-firmware:RMPUPDATE', 'kvm:snp_begin_psc', 'guest/vm1:VMGEXIT', 'guest/vm1:arch_accept_memory', 'guest/vm1:accept_memory']);
      const psc = t.parent(r)!;
      expect(nestedInTime(r, psc)).toBe(true);
      const vmm = t.children(psc).filter((c) => c.operationName === 'KVM_HC_MAP_GPA_RANGE');
      expect(vmm.length).toBeGreaterThan(0);
      expect(vmm.every((v) => t.service(v) === 'vmm/vm1')).toBe(true);
    }
    // 2M PSC entries on 4K folios: each entry's 512 RMPUPDATEs are one aggregated span.
    expect(fromKernel.some((r) => tag(r, 'cvmsim.aggregated.count') === 512)).toBe(true);
    expect(t.named('NPF').filter((r) => t.chain(r).includes('guest/vm1:accept_memory'))).toHaveLength(0);
  });
});

/** vCPUs accepting 16 MiB in parallel on a TD, traced; `zap` holds the secure_ept_lock exclusive at first. */
async function tracedTd(config: Partial<TestVmOptions>, vcpus: number, zap = false) {
  const file = tempJaegerFile();
  const sim = new Sim({ seed: 5 });
  const session = startTracing(sim, { experiment: 'td-accept', params: { ...config, vcpus, zap }, seed: 5 }, { ...defaultTraceOptions, files: [file] });
  const platform = tdxVm(sim, { gpaBytes: 16 * MiB, vcpus: vcpus, ...config });
  if (zap) {
    // A SEAMCALL holding the S-EPT tree lock exclusive (TDH.MEM.RANGE.BLOCK in a zap) for 50 us.
    sim.spawn((function* (): Proc<void> {
      expect(platform.td.secureEptLock.tryAcquire('exclusive', 'host')).toBe('acquired');
      yield sim.compute(50_000);
      platform.td.secureEptLock.release('exclusive');
    })(), { name: 'kvm-zap', cpu: new Cpu(sim, 'host0'), service: 'kvm' });
  }
  acceptInParallel(sim, platform, 16 * MiB, 2 * MiB);
  const summary = await session.finish();
  expect(summary.droppedSpans).toBe(0);
  return { t: new Trace(JSON.parse(readFileSync(file, 'utf8')).data[0] as JaegerTrace), m: platform.metrics() };
}

/** Every event named `name` with the span it is on. */
function eventsNamed(t: Trace, name: string): { span: JaegerSpan; fields: Record<string, string | number | boolean> }[] {
  return t.trace.spans.flatMap((span) => t.events(span).filter((f) => f['event'] === name).map((fields) => ({ span, fields })));
}

describe('TDX_OPERAND_BUSY answers and retries are span events with the status name and value', () => {
  it('per-page, TDX 1.0, 4 vCPUs: BUSY on the SEAMCALL span, RET_PF_RETRY on the KVM exit span', async () => {
    const { t, m } = await tracedTd({ tdxModule: '1.0', fidelity: 'per-page' }, 4);
    const busy = eventsNamed(t, 'TDX_OPERAND_BUSY');
    expect(busy.length).toBe(m['tdx.busy.TDX_OPERAND_BUSY']);
    expect(busy.length).toBeGreaterThan(0);
    for (const b of busy) {
      expect(['TDH.MEM.PAGE.AUG', 'TDH.MEM.SEPT.ADD']).toContain(b.span.operationName);
      expect(b.fields).toMatchObject({ status: '0x8000020000000092', 'status.name': 'TDX_OPERAND_BUSY', leaf: b.span.operationName });
    }
    const retries = eventsNamed(t, 'RET_PF_RETRY');
    expect(retries.length).toBe(m['kvm.ret_pf_retry']);
    for (const r of retries) {
      expect(r.span.operationName).toBe('tdx_handle_ept_violation');
      if (r.fields['status.name'] === 'TDX_OPERAND_BUSY') expect(r.fields['status']).toBe('0x8000020000000092');
      else expect(r.fields).toMatchObject({ 'status.name': 'FROZEN_SPTE' }); // a KVM retry, not a TDX status
    }
    expect(retries.filter((r) => r.fields['status.name'] === 'TDX_OPERAND_BUSY')).toHaveLength(busy.length);
  });

  it('aggregated, TDX 1.5, the tree lock held exclusive: the step gives way to the per-page path (an event), which meets the BUSY', async () => {
    const { t, m } = await tracedTd({}, 4, true);
    const fallbacks = eventsNamed(t, 'cvmsim.aggregated.fallback');
    expect(fallbacks.length).toBe(m['model.aggregated_fallbacks']);
    expect(fallbacks.length).toBeGreaterThan(0);
    expect(fallbacks.every((f) => f.fields['reason'] === 'secure_ept_lock busy')).toBe(true);
    const busy = eventsNamed(t, 'TDX_OPERAND_BUSY');
    expect(busy.length).toBe(m['tdx.busy.TDX_OPERAND_BUSY']);
    expect(busy.length).toBeGreaterThan(0);
    expect(busy.every((b) => b.fields['status'] === '0x8000020000000092' && b.fields['status.name'] === 'TDX_OPERAND_BUSY')).toBe(true);
    // The other regions still went as aggregated steps, chain and all.
    expect(t.named('TDH.MEM.PAGE.AUG').some((a) => (tag(a, 'cvmsim.aggregated.count') as number) > 1)).toBe(true);
  });

  it('aggregated, TDX 1.0: the fluid lock has no BUSY answers to show, so the AUG spans carry the stretch instead', async () => {
    // 8 vCPUs: the AUG body is ~1/8 of a 4K page's time, so 8 steps at once saturate the lock.
    const { t, m } = await tracedTd({ tdxModule: '1.0' }, 8);
    expect(m['tdx.busy.total']).toBe(0);
    expect(eventsNamed(t, 'TDX_OPERAND_BUSY')).toHaveLength(0);
    const augs = t.named('TDH.MEM.PAGE.AUG');
    expect(augs.length).toBe(8);
    expect(augs.every((a) => typeof tag(a, 'secure_ept_lock.fluid_wait_ns') === 'number')).toBe(true);
    expect(augs.some((a) => (tag(a, 'secure_ept_lock.fluid_wait_ns') as number) > 0)).toBe(true);
    expect(m['model.aggregated_contended_steps']).toBeGreaterThan(0);
  });
});
