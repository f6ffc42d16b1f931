import { defineConfig } from 'vitest/config';

// `npm run test:deploy`: the container image, the Helm chart and the KServe runtime. Kept out of
// `npm test` because it installs podman, builds images and fetches helm (minutes, not seconds).
export default defineConfig({
  test: {
    include: ['test/deploy/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 1_200_000,
    teardownTimeout: 60_000,
  },
});
