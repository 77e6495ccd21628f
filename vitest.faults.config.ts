import { defineConfig } from "vitest/config";

/**
 * Fault tests that disturb shared services (stopping the PostgreSQL server): run alone, one file at a
 * time, before the main suite.
 */
export default defineConfig({
  test: {
    include: ["packages/*/test/faults/**/*.test.ts"],
    maxWorkers: 1,
    fileParallelism: false,
    testTimeout: 120_000,
    reporters: ["default", "./scripts/summary-reporter.ts"],
  },
});
