/**
 * `baton worker MODULE...` boots its first isolate before it has loaded the modules itself
 * (sdk/worker/isolate-pool.ts, prewarmIsolate): the pool then starts with that isolate instead
 * of a second one, and a pool it does not fit (other modules or heap) terminates it.
 * `baton worker --package` boots the thread before it knows its module (prebootIsolate) and names
 * the module once it has fetched the bundle. Real worker threads importing a real function module.
 */
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { expect, it } from "vitest";
import type { Isolate, RunJob } from "../../sdk/worker/isolate.ts";
import {
  discardPrewarmed,
  IsolatePool,
  prebootIsolate,
  prewarmIsolate,
} from "../../sdk/worker/isolate-pool.ts";
import { waitUntil } from "../helpers/processes.ts";
import { testLogger } from "../helpers/test-logger.ts";

const noop = pathToFileURL(join(import.meta.dirname, "../../functions/noop.ts")).href;

const pool = (heapMb: number) =>
  new IsolatePool({
    modules: [noop],
    heapMb,
    minIdle: 1,
    idleTimeoutMs: 60_000,
    logger: { debug: () => {}, ...testLogger },
  });

it("the pool takes the isolate prewarmed for its modules, and terminates one that does not fit", async () => {
  const early = prewarmIsolate([noop], 64);
  expect(early).toBeDefined();
  // Only one isolate is prewarmed at a time.
  expect(prewarmIsolate([noop], 64)).toBeUndefined();
  const fitting = pool(64);
  try {
    expect((await fitting.start()).functions).toContain("noop");
    expect(await fitting.acquire()).toBe(early);
  } finally {
    await fitting.close();
  }

  const unfit = prewarmIsolate([noop], 64);
  const other = pool(96);
  try {
    await other.start();
    const used = await other.acquire();
    expect(used).not.toBe(unfit);
    await waitUntil("the unfit prewarmed isolate to end", () => unfit?.isAlive === false || undefined, {
      timeoutMs: 30_000,
    });
  } finally {
    await other.close();
  }
});

it("an isolate prebooted without modules is given them by the pool that fits it, and runs them", async () => {
  const early = prebootIsolate(64);
  expect(early?.hasModules).toBe(false);
  // Only one isolate is prewarmed or prebooted at a time.
  expect(prebootIsolate(64)).toBeUndefined();
  const fitting = pool(64);
  try {
    expect((await fitting.start()).functions).toContain("noop");
    const isolate = await fitting.acquire();
    expect(isolate).toBe(early);
    expect(isolate.hasModules).toBe(true);
    expect(await isolate.run(noopJob({ hello: "prebooted" }))).toEqual({
      kind: "returned",
      output: JSON.stringify({ hello: "prebooted" }),
    });
  } finally {
    await fitting.close();
  }

  // Of another heap size: prewarmIsolate starts a new one and terminates the prebooted thread.
  const unfit = prebootIsolate(64);
  const started = prewarmIsolate([noop], 96);
  expect(started).toBeDefined();
  expect(started).not.toBe(unfit);
  await waitUntil("the unfit prebooted isolate to end", () => unfit?.isAlive === false || undefined, {
    timeoutMs: 30_000,
  });
  await discardPrewarmed();
  expect(started?.isAlive).toBe(false);
});

// The compiled isolate (dist/, what `baton worker --package` runs) is booted without tsx; given a
// TypeScript module later, its runtime registers tsx's hooks itself before importing it.
it("a compiled isolate prebooted without modules imports a TypeScript module named later", async () => {
  const compiled = join(import.meta.dirname, "../../dist/sdk/worker/isolate.js");
  const { Isolate: CompiledIsolate } = (await import(pathToFileURL(compiled).href)) as {
    Isolate: typeof Isolate;
  };
  const isolate = new CompiledIsolate({ heapMb: 64 });
  try {
    isolate.load([noop]);
    expect(() => isolate.load([noop])).toThrow(/has its modules already/);
    const ready = await isolate.ready;
    expect(ready.functions).toContain("noop");
    expect(ready.failures).toEqual([]);
    expect(await isolate.run(noopJob(7))).toEqual({ kind: "returned", output: "7" });
  } finally {
    await isolate.terminate();
  }
});

function noopJob(input: unknown): RunJob {
  return {
    module: noop,
    fn: "noop",
    input,
    ctx: {
      executionId: "e1",
      workflow: "w",
      step: "s",
      run: 1,
      attempt: 1,
      idempotencyKey: undefined,
      effect: false,
      function: "noop",
      worker: "test",
      deadline: Date.now() + 60_000,
    },
    onLog: () => {},
  };
}
