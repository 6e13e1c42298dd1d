import { Sim } from './sim.ts';

export interface DeterminismResult {
  deterministic: boolean;
  fingerprints: [string, string];
  events: [number, number];
  /** The first event where the runs differ, described from both runs. */
  divergence?: { index: number; first: string; second: string };
}

/**
 * Runs a scenario twice with the same seed, recording every event, and compares. The scenario
 * builds its model on the given Sim and runs it.
 */
export function checkDeterminism(seed: number, scenario: (sim: Sim) => void): DeterminismResult {
  const runs = [0, 1].map(() => {
    const sim = new Sim({ seed, recordEvents: true });
    scenario(sim);
    return sim;
  }) as [Sim, Sim];
  const [a, b] = runs;
  const fingerprints: [string, string] = [a.fingerprint.hex(), b.fingerprint.hex()];
  const events: [number, number] = [a.fingerprint.count, b.fingerprint.count];
  const n = Math.max(a.fingerprint.recorded, b.fingerprint.recorded);
  for (let i = 0; i < n; i++) {
    const ea = a.fingerprint.event(i);
    const eb = b.fingerprint.event(i);
    const same = ea !== undefined && eb !== undefined && ea.time === eb.time && ea.seq === eb.seq &&
      a.kindName(ea.kind) === b.kindName(eb.kind);
    if (!same) {
      const show = (s: Sim, e: typeof ea) => e === undefined ? 'no event (run ended)' : `t=${e.time}ns seq=${e.seq} ${s.kindName(e.kind)}`;
      return { deterministic: false, fingerprints, events, divergence: { index: i, first: show(a, ea), second: show(b, eb) } };
    }
  }
  return { deterministic: fingerprints[0] === fingerprints[1], fingerprints, events };
}
