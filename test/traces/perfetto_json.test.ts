import { describe, expect, it } from 'vitest';
import { tracedContention } from './contention_scenario.ts';

interface TraceEvent {
  ph: string;
  name: string;
  cat?: string;
  ts?: number;
  dur?: number;
  pid: number;
  tid: number;
  args?: Record<string, unknown>;
}

describe('.perfetto.json (Chrome trace events)', () => {
  it('slices sorted by start, longest first; one named track per CPU lane and per actor inside its service; TDX-module ops run on the calling vCPU\'s thread', async () => {
    const file = JSON.parse((await tracedContention(1, { level: 'lock' })).perfetto) as { traceEvents: TraceEvent[]; displayTimeUnit: string };
    expect(file.displayTimeUnit).toBe('ns');
    const events = file.traceEvents;
    const processNames = new Map(events.filter((e) => e.name === 'process_name').map((e) => [e.pid, e.args!.name]));
    const threadNames = new Map(events.filter((e) => e.name === 'thread_name').map((e) => [`${e.pid}/${e.tid}`, e.args!.name]));
    const laneOf = (e: TraceEvent) => `${processNames.get(e.pid)}:${threadNames.get(`${e.pid}/${e.tid}`)}`;
    const slices = events.filter((e) => e.ph === 'X');
    expect(slices.map((e) => `${laneOf(e)} ${e.cat} ${e.name} ${e.ts}+${e.dur}`)).toEqual([
      'cvmsim:contention cvmsim contention 0+12',
      'guest:vcpu1 guest vcpu1 0+12', // the lane of CPU vcpu1
      'guest:vcpu1 guest vcpu1 0+12', // the thread vcpu1 on it
      'guest:vcpu0 guest vcpu0 0+8',
      'guest:vcpu0 guest vcpu0 0+8',
      'guest:vcpu0 guest accept_memory 0+8',
      'guest:vcpu1 guest accept_memory 1+11',
      'guest:vcpu1 guest wait zone->lock 1+2',
      'guest:vcpu0 tdx-module TDG.MEM.PAGE.ACCEPT 3+5',
      'guest:vcpu1 tdx-module TDG.MEM.PAGE.ACCEPT 6+0',
      'guest:vcpu1 tdx-module TDG.MEM.PAGE.ACCEPT 9+3',
    ]);
    const instants = events.filter((e) => e.ph === 'i').map((e) => `${laneOf(e)} ${e.name} ${e.ts}`);
    expect(instants).toEqual(['guest:vcpu1 retry 6', 'guest:vcpu1 lock_busy 6']);
  });

  it('slices on one thread nest: each starts and ends inside the one before it that is still open', async () => {
    const events = (JSON.parse((await tracedContention(3, { level: 'lock' }, true)).perfetto) as { traceEvents: TraceEvent[] }).traceEvents;
    const open = new Map<string, { end: number }[]>();
    for (const e of events.filter((x) => x.ph === 'X')) {
      const stack = open.get(`${e.pid}/${e.tid}`) ?? [];
      while (stack.length > 0 && stack[stack.length - 1]!.end <= e.ts! && !(e.dur === 0 && stack[stack.length - 1]!.end === e.ts)) stack.pop();
      const end = e.ts! + e.dur!;
      if (stack.length > 0) expect(end).toBeLessThanOrEqual(stack[stack.length - 1]!.end);
      stack.push({ end });
      open.set(`${e.pid}/${e.tid}`, stack);
    }
  });
});
