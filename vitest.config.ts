import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Kernel tests build network namespaces; they run one file at a time so that counters,
    // conntrack tables and timing are not disturbed by other suites (see test/support/netns.ts).
    fileParallelism: true,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default'],
    pool: 'forks',
  },
});
