import { Histogram, type HistogramSnapshot } from './histogram.ts';

export interface LockStatsSnapshot {
  acquisitions: number;
  contended: number;
  busy: number;
  wait_ns: HistogramSnapshot;
  hold_ns: HistogramSnapshot;
}

/** Statistics every lock keeps: acquisitions, contended acquisitions, BUSY answers, wait and hold times. */
export class LockStats {
  acquisitions = 0;
  contended = 0;
  busy = 0;
  readonly wait: Histogram;
  readonly hold: Histogram;

  constructor(name: string) {
    this.wait = new Histogram(`${name}.wait_ns`);
    this.hold = new Histogram(`${name}.hold_ns`);
  }

  snapshot(): LockStatsSnapshot {
    return {
      acquisitions: this.acquisitions,
      contended: this.contended,
      busy: this.busy,
      wait_ns: this.wait.snapshot(),
      hold_ns: this.hold.snapshot(),
    };
  }
}
