import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * The layering of models/: no folder imports a folder that imports it back (directly or round a
 * longer circle). The allowed order today, lowest first: arch; tdx, snp; host; kvm; vmm; vm;
 * guest stands apart (it defines the contract it calls, guest/platform.ts); workloads drive guest.
 */
const MODELS = resolve(dirname(fileURLToPath(import.meta.url)), '../../models');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isDirectory() ? sourceFiles(p) : /\.ts$/.test(e.name) ? [p] : [];
  });
}

function folderOf(file: string): string {
  const rel = relative(MODELS, file);
  return rel.includes(sep) ? rel.slice(0, rel.indexOf(sep)) : '.';
}

/** Folder -> folders it imports from (value and type imports alike). */
function folderGraph(): Map<string, Set<string>> {
  const graph = new Map<string, Set<string>>();
  for (const file of sourceFiles(MODELS)) {
    const from = folderOf(file);
    if (!graph.has(from)) graph.set(from, new Set());
    for (const m of readFileSync(file, 'utf8').matchAll(/(?:import|export)\s[^'"]*?from\s+['"](\.[^'"]+)['"]/g)) {
      const target = resolve(dirname(file), m[1]!);
      if (!target.startsWith(MODELS + sep)) continue;
      const to = folderOf(target);
      if (to !== from) graph.get(from)!.add(to);
    }
  }
  return graph;
}

/** Every folder that can reach `start` again, with the path that does. */
function circles(graph: Map<string, Set<string>>): string[] {
  const found: string[] = [];
  for (const start of [...graph.keys()].sort()) {
    const stack: string[][] = [[start]];
    const seen = new Set<string>();
    while (stack.length > 0) {
      const path = stack.pop()!;
      for (const next of [...(graph.get(path[path.length - 1]!) ?? [])].sort()) {
        if (next === start) found.push([...path, next].join(' -> '));
        else if (!seen.has(next)) seen.add(next), stack.push([...path, next]);
      }
    }
  }
  return found;
}

describe('models/ import graph', () => {
  it('has no folder that imports a folder importing it back', () => {
    const graph = folderGraph();
    expect(graph.size).toBeGreaterThan(5);
    expect(circles(graph)).toEqual([]);
  });

  it('the check finds a circle when there is one', () => {
    const graph = new Map([['a', new Set(['b'])], ['b', new Set(['c'])], ['c', new Set(['a'])]]);
    expect(circles(graph)).toContain('a -> b -> c -> a');
  });

  it('the guest kernel model imports nothing else of models/ (it defines the contract it calls)', () => {
    expect([...folderGraph().get('guest')!]).toEqual([]);
  });
});
