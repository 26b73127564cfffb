import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Socket-heavy integration tests share 2 cores; forks keep each file's servers isolated.
    pool: 'forks',
    maxWorkers: 2,
  },
});
