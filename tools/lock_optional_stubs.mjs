// Keeps package-lock.json acceptable to `npm ci` on machines whose npm registry serves only the
// linux-x64 builds of packages with per-platform optional dependencies (rollup, esbuild): npm
// then leaves the other platforms out of the lock, and `npm ci` rejects the lock as out of sync
// with package.json. This adds an entry for each missing optional platform package, with the
// os/cpu/libc that make npm skip it here. Run after any `npm install` that rewrites the lock:
//   node tools/lock_optional_stubs.mjs package-lock.json
import { readFileSync, renameSync, writeFileSync } from 'node:fs';

const path = process.argv[2] ?? 'package-lock.json';
const lock = JSON.parse(readFileSync(path, 'utf8'));
const pkgs = lock.packages;
let added = 0;
for (const [key, entry] of Object.entries(pkgs)) {
  for (const [dep, version] of Object.entries(entry.optionalDependencies ?? {})) {
    const nested = `${key === '' ? '' : `${key}/`}node_modules/${dep}`;
    const top = `node_modules/${dep}`;
    if (pkgs[nested] || pkgs[top]) continue;
    // @scope/name-<os>-<cpu>[-<abi>], e.g. @rollup/rollup-linux-x64-musl, @esbuild/darwin-arm64.
    const m = /^@[^/]+\/(?:[^-]+-)?(aix|android|darwin|freebsd|linux|netbsd|openbsd|openharmony|sunos|win32)-(\w+)(?:-(\w+))?$/.exec(dep);
    const stub = { version, dev: entry.dev, optional: true };
    if (m) {
      stub.cpu = [m[2]];
      stub.os = [m[1]];
      if (m[3] === 'musl' || m[3] === 'gnu') stub.libc = [m[3] === 'gnu' ? 'glibc' : 'musl'];
    }
    pkgs[top] = stub;
    added++;
  }
}
lock.packages = Object.fromEntries(
  Object.entries(pkgs).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a < b ? -1 : a > b ? 1 : 0)),
);
writeFileSync(`${path}.tmp`, `${JSON.stringify(lock, null, 2)}\n`);
renameSync(`${path}.tmp`, path);
console.log(`lock_optional_stubs: added ${added} entries`);
