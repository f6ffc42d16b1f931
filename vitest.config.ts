import { configDefaults, defineConfig } from 'vitest/config';

// Integration suites start real stub processes; on a 2-core machine two test files at a time
// is the most that keeps health timing (300 ms heartbeats) meaningful.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // test/deploy builds container images: `npm run test:deploy` (vitest.deploy.config.ts).
    exclude: [...configDefaults.exclude, 'test/deploy/**'],
    globalSetup: ['test/global-setup.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    teardownTimeout: 10_000,
  },
});
