import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Integration and system tests start real nats-server and engine processes; give them room on a 2-core machine.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    maxWorkers: 2,
    // Every `bin/baton.mjs` a test starts (and every process that one starts) runs the TypeScript
    // sources through tsx, never a dist/ that may be older than them; the compiled code has its
    // own test (test/system/package.test.ts), which builds it first.
    env: { BATON_FROM_SOURCE: "1" },
  },
});
