import { defineConfig } from 'vitest/config';

// Tests spawn real vCPU worker_threads (loaded from dist/, built by `pretest`).
// Forks keep each test file's threads in their own process; two at a time fits the 2-core machine.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 30_000,
    env: { VGIC_EMU_LOCKDEP: '1' },
  },
});
