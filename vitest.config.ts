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
    // sources through tsx, unless the test asks for the compiled code (cli-start, package, the
    // tracing test's worker), which test/global-setup.ts builds once before any test runs.
    env: { BATON_FROM_SOURCE: "1" },
    globalSetup: ["test/global-setup.ts"],
  },
});
