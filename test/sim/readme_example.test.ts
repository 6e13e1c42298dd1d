import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import { pathToFileURL } from 'node:url';

/** The README's engine example must keep running as written (the README stays true). */
describe('README engine example', () => {
  it('runs, and its two vCPUs contend on the spinlock', async () => {
    const readme = readFileSync(resolve(__dirname, '../../README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## The engine'));
    const code = /```ts\n([\s\S]*?)```/.exec(section)![1]!;
    expect(code).toContain("from './sim/index.ts'");
    const simIndex = pathToFileURL(resolve(__dirname, '../../sim/index.ts')).href;
    const lines: unknown[][] = [];
    const body = code
      .replace("from './sim/index.ts'", `from '${simIndex}'`)
      .replace(/console\.log\(/g, 'globalThis.__readmeLog(');
    (globalThis as { __readmeLog?: (...a: unknown[]) => void }).__readmeLog = (...a) => void lines.push(a);
    const file = join(mkdtempSync(join(tmpdir(), 'cvmsim-readme-')), 'example.ts');
    writeFileSync(file, body);
    await import(pathToFileURL(file).href);
    expect(lines.length).toBe(1);
    const [now, lockStats, accounting, fingerprint] = lines[0] as [number, { acquisitions: number; contended: number }, { spinNs: number }[], string];
    expect(now).toBeGreaterThan(40_000); // two 20 us holds, one after the other
    expect(lockStats.acquisitions).toBe(2);
    expect(lockStats.contended).toBe(1);
    expect(accounting.some((a) => a.spinNs > 0)).toBe(true);
    expect(fingerprint).toMatch(/^[0-9a-f]{16}$/);
  });
});
