import { performance } from 'node:perf_hooks';

/**
 * Sweep progress on stderr: a bar redrawn in place on a terminal (done/total, percent, ETA), or
 * plain lines every few seconds when stderr is a file or a CI log. Wall time only; nothing here
 * touches a simulation.
 */
export class Progress {
  private readonly started = performance.now();
  private done = 0;
  private lastPrint = -Infinity;
  private timer: NodeJS.Timeout | null = null;
  private readonly tty: boolean;

  constructor(
    private readonly label: string,
    private readonly total: number,
    /** Runs already done before this start (resumed from the journal); not counted in the ETA rate. */
    private readonly resumed: number,
    private readonly out: NodeJS.WriteStream = process.stderr,
    private readonly plainEveryMs = 5000,
  ) {
    this.tty = out.isTTY === true;
    this.done = resumed;
    this.timer = setInterval(() => this.render(false), this.tty ? 500 : plainEveryMs);
    this.timer.unref();
    this.render(true);
  }

  tick(): void {
    this.done++;
    this.render(this.done === this.total);
  }

  finish(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    if (this.tty) this.out.write('\n');
  }

  private eta(): string {
    const ran = this.done - this.resumed;
    if (ran === 0) return '--';
    const elapsed = performance.now() - this.started;
    return formatClock(((this.total - this.done) * elapsed) / ran);
  }

  private render(force: boolean): void {
    const now = performance.now();
    const pct = this.total === 0 ? 100 : Math.floor((100 * this.done) / this.total);
    if (this.tty) {
      const width = 30;
      const filled = Math.round((width * pct) / 100);
      this.out.write(`\r${this.label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${this.done}/${this.total} ${pct}% ETA ${this.eta()}  `);
      return;
    }
    if (!force && now - this.lastPrint < this.plainEveryMs) return;
    this.lastPrint = now;
    this.out.write(`${this.label}: ${this.done}/${this.total} runs done (${pct}%), ETA ${this.eta()}\n`);
  }
}

/** m:ss or h:mm:ss */
export function formatClock(ms: number): string {
  const s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}
