import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Vitest's default is one worker fewer than the cores: a single worker on a 2-core machine.
    // Most time goes to test files that spawn the CLI and wait for it, so two workers keep both
    // cores busy.
    maxWorkers: 2,
  },
});
