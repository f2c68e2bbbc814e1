import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Integration tests start their own nats-server per file; two cores is the CI budget.
    maxWorkers: 2,
    // Integration tests spawn CLIs and daemons through tsx; on a cold cache and two busy cores one
    // spawn can take seconds, so the budget per test is generous. A hung test still ends.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    reporters: ['default', 'json'],
    outputFile: { json: '.test-results/vitest.json' },
  },
});
