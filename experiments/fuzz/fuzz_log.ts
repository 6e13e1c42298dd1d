import { closeSync, openSync } from 'node:fs';
import { writeAll } from '../atomic_write.ts';
import { OutputError } from '../output_paths.ts';
import type { RunResult } from './campaign.ts';

/**
 * `fuzz --log FILE`: one JSON line per configuration run, appended as each finishes, for looking
 * at a long campaign afterwards (which configurations were slow, which hit the cap). Each line is
 * written whole; a write that fails stops the campaign with an OutputError.
 */
export class FuzzLog {
  private fd: number | null;

  constructor(readonly path: string) {
    try {
      this.fd = openSync(path, 'a');
    } catch (e) {
      throw new OutputError(path, e);
    }
  }

  append(r: RunResult): void {
    if (this.fd === null) return;
    const { config, result } = r;
    const line = {
      index: config.index,
      experiment: config.experiment,
      seed: config.seed,
      params: config.params,
      outcome: result.outcome,
      wall_ms: Math.round(result.wallMs),
      events: result.events,
      virtual_ns: result.virtualNs,
      ...(r.recheck ? { run_twice: true } : {}),
      ...(result.terminated === true ? { terminated: true } : {}),
      ...(result.error === undefined ? {} : { error: result.error.split('\n')[0] }),
    };
    try {
      writeAll(this.fd, Buffer.from(`${JSON.stringify(line)}\n`, 'utf8'));
    } catch (e) {
      throw new OutputError(this.path, e);
    }
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}
