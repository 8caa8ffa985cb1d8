/**
 * `baton worker MODULE...` boots its first isolate before it has loaded the modules itself
 * (sdk/worker/isolate-pool.ts, prewarmIsolate): the pool then starts with that isolate instead
 * of a second one, and a pool it does not fit (other modules or heap) terminates it. Real worker
 * threads importing a real function module.
 */
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { expect, it } from "vitest";
import { IsolatePool, prewarmIsolate } from "../../sdk/worker/isolate-pool.ts";
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
