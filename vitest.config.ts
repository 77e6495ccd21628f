import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["packages/*/test/**/*.test.ts"],
    // Fault tests stop shared services; they run alone before this suite (vitest.faults.config.ts).
    exclude: ["packages/*/test/faults/**", "**/node_modules/**"],
    // Two cores on the reference machine: keep the worker count small and predictable.
    maxWorkers: 2,
    testTimeout: 60_000,
    reporters: ["default", "./scripts/summary-reporter.ts"],
  },
});
