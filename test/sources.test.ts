import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { experiments } from '../experiments/registry.ts';
import { cvmsim } from './experiments/cli_harness.ts';

/**
 * docs/sources.md is the project's bibliography: every citation in code and docs is a key of it,
 * in square brackets, and nothing points at a file outside the repository.
 */

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SOURCES = 'docs/sources.md';
const SELF = 'test/sources.test.ts';

/** The repository's own files that may cite: sources, docs, tests, tooling. */
const SCANNED_DIRS = ['.ci', 'bin', 'docs', 'experiments', 'models', 'sim', 'test', 'tools', 'traces'];
const SCANNED_FILES = ['README.md', 'package.json', 'tsconfig.json', 'vitest.config.ts'];
const TEXT_FILE = /\.(ts|mts|js|mjs|md|json)$|^run$/;

function walk(dir: string, out: string[]): void {
  for (const name of readdirSync(join(ROOT, dir))) {
    const rel = join(dir, name);
    if (name === 'node_modules' || name === 'results') continue;
    if (statSync(join(ROOT, rel)).isDirectory()) walk(rel, out);
    else if (TEXT_FILE.test(name)) out.push(rel.split(sep).join('/'));
  }
}

function repositoryFiles(): string[] {
  const out: string[] = [];
  for (const d of SCANNED_DIRS) if (existsSync(join(ROOT, d))) walk(d, out);
  for (const f of SCANNED_FILES) if (existsSync(join(ROOT, f))) out.push(f);
  return out.filter((f) => f !== SELF).sort();
}

const read = (file: string) => readFileSync(join(ROOT, file), 'utf8');

/**
 * A citation: `[key]`, not followed by `(` (a Markdown link). Keys have a prefix (`linux:`,
 * `estimate:`, ...), are a result (`R2`), or are lower-case words and numbers joined by at least
 * two dashes (`kirill-2024-10-accept-90g`), which keeps array indexing and ranges out.
 */
const PREFIXES = ['linux', 'linux-commit', 'tdx-module', 'tdx-module-1.0', 'qemu', 'edk2', 'github', 'estimate'];
// A key never contains '<' (the placeholders of docs/sources.md's table of forms) or a backtick.
const PREFIXED = `(?:${PREFIXES.map((p) => p.replace('.', '\\.')).join('|')}):[^\\]\\n\`<]+`;
const KEY_BODY = `${PREFIXED}|R\\d{1,2}|[a-z][a-z0-9]*(?:-[a-z0-9]+){2,}`;
const CITATION = new RegExp(`\\[(${KEY_BODY})\\](?!\\()`, 'g');

function citations(text: string): string[] {
  return [...text.matchAll(CITATION)].map((m) => m[1]!);
}

/**
 * The keys docs/sources.md defines: the backticked keys that open a list item (several may, joined
 * by commas) or a table row.
 */
function definedKeys(): string[] {
  const keys: string[] = [];
  const lines = read(SOURCES).split('\n');
  for (let i = 0; i < lines.length; i++) {
    let item = lines[i]!;
    if (!item.startsWith('- ') && !item.startsWith('| ')) continue;
    if (item.startsWith('- ')) while (lines[i + 1]?.startsWith('  ')) item += ` ${lines[++i]!.trim()}`;
    const lead = /^(?:- |\| )((?:`\[[^\]]+\]`(?:,\s*)?)+)/.exec(item);
    if (lead === null) continue;
    for (const m of lead[1]!.matchAll(/`\[([^\]]+)\]`/g)) keys.push(m[1]!);
  }
  return keys;
}

/** Lines of `file` that match `re`, as "file:line: text". */
function matchingLines(file: string, re: RegExp): string[] {
  return read(file).split('\n').flatMap((line, i) => (re.test(line) ? [`${file}:${i + 1}: ${line.trim()}`] : []));
}

describe('docs/sources.md: every citation resolves, nothing points outside the repository', () => {
  const files = repositoryFiles();
  const defined = definedKeys();
  const known = new Set(defined);

  it('defines each key once, and every key has the form citations are recognised by', () => {
    expect(defined.length).toBeGreaterThan(50);
    expect(defined.filter((k, i) => defined.indexOf(k) !== i)).toEqual([]);
    expect(defined.filter((k) => !new RegExp(`^(?:${KEY_BODY})$`).test(k))).toEqual([]);
  });

  it('carries the published results the calibration compares against (R1, R2, R5, R8, R9, R10)', () => {
    for (const r of ['R1', 'R2', 'R5', 'R8', 'R9', 'R10']) expect(known.has(r), r).toBe(true);
  });

  it('every key cited in code, docs and the README is defined in docs/sources.md', () => {
    const missing = files.flatMap((f) => citations(read(f)).filter((k) => !known.has(k)).map((k) => `${f}: [${k}]`));
    expect(missing).toEqual([]);
  });

  it('no file cites the design notes or a path outside the repository', () => {
    const outside = new RegExp([
      '\\b(?:domain|design|architecture)\\.md\\b', // the design notes the project grew from
      '(?:^|[\\s`\'"(=])/(?:work|home|root|Users|mnt|srv)/', // absolute paths on a machine
      '\\.\\./shared\\b',
    ].join('|'));
    expect(files.flatMap((f) => matchingLines(f, outside))).toEqual([]);
  });

  it('citations use keys: no bare lore:/linux:/tdx-module: source notation outside a key', () => {
    const bare = /(?<![[\w.-])(?:lore|linux):[\w./-]|(?<![[\w.-])tdx-module:(?:src|include)\//;
    expect(files.flatMap((f) => matchingLines(f, bare))).toEqual([]);
  });

  it('Markdown links to files resolve to files inside the repository', () => {
    const broken: string[] = [];
    for (const f of files.filter((x) => x.endsWith('.md'))) {
      for (const m of read(f).matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1]!.split('#')[0]!;
        if (target === '' || /^[a-z]+:/i.test(target)) continue;
        const abs = resolve(ROOT, dirname(f), target);
        const inside = !relative(ROOT, abs).startsWith('..');
        if (!inside || !existsSync(abs)) broken.push(`${f}: ${m[1]}`);
      }
    }
    expect(broken).toEqual([]);
  });

  it('every ESTIMATE in models/ names its entry: the comment that says ESTIMATE cites an [estimate:<name>] key', () => {
    const unkeyed: string[] = [];
    for (const f of files.filter((x) => x.startsWith('models/') && x.endsWith('.ts'))) {
      // Comment blocks: a /** ... */ block, or a run of // lines.
      const text = read(f);
      const blocks = [...text.matchAll(/\/\*[\s\S]*?\*\//g), ...text.matchAll(/(?:^[ \t]*\/\/.*\n?)+/gm)].map((m) => m[0]);
      for (const b of blocks) {
        if (b.includes('ESTIMATE') && !citations(b).some((k) => k.startsWith('estimate:'))) unkeyed.push(`${f}: ${b.trim().split('\n')[0]}`);
      }
    }
    expect(unkeyed).toEqual([]);
  });

  it("every experiment parameter's source is one or more defined keys", () => {
    const bad: string[] = [];
    let sourced = 0;
    for (const e of experiments) {
      for (const [name, p] of Object.entries(e.params)) {
        if (p.source === undefined) continue;
        sourced++;
        const keys = citations(p.source);
        if (keys.length === 0 || p.source.replace(CITATION, '').trim() !== '') bad.push(`${e.name}.${name}: '${p.source}' is not a list of [keys]`);
        for (const k of keys) if (!known.has(k)) bad.push(`${e.name}.${name}: [${k}]`);
      }
    }
    expect(bad).toEqual([]);
    expect(sourced).toBeGreaterThan(0);
  });

  it('cvmsim describe prints each parameter\'s source keys next to its default', async () => {
    const d = await cvmsim(['describe', 'accept-boot'], { fixture: false });
    expect(d.code).toBe(0);
    expect(d.stdout).toMatch(/name\s+default\s+source\s+allowed/);
    expect(d.stdout).toMatch(/firmware_accept_mib\s+512\s+\[edk2:PcdLazyAcceptPartialMemorySize\] \[linux:Documentation\/arch\/x86\/tdx\.rst\]\s+an integer/);
    expect(d.stdout).toMatch(/wmark_zero_fix\s+true\s+\[kirill-2025-03-wmark-zero\]/);
    expect(d.stdout).toMatch(/memory_gib\s+4\s+-\s+an integer/);
    expect(d.stdout).toContain('docs/sources.md');
  });

  it('the README points to docs/sources.md', () => {
    expect(read('README.md').includes(`](${SOURCES})`)).toBe(true);
  });
});
