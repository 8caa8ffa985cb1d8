/**
 * One worker handed the same effect task message twice at once (JetStream delivers it again
 * while the first copy is still claiming it in the ledger: NATS was away past the ack wait, as in
 * recovery.test.ts's outage, where this ran an effect twice). The ledger cannot tell the two
 * copies apart (same stream sequence, same worker), so the worker itself must: the effect runs
 * once. The TaskRunner is driven directly with one real message from a real nats-server, since
 * JetStream cannot be made to redeliver at that very moment on demand; the isolates, the ledger
 * and the reports are real.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { StorageType } from "nats";
import { afterAll, expect, it } from "vitest";
import { EffectLedger } from "../../sdk/effect-ledger.ts";
import { buckets, streams, taskConsumer } from "../../sdk/protocol.ts";
import { openBucket } from "../../sdk/replication.ts";
import { IsolatePool } from "../../sdk/worker/isolate-pool.ts";
import { ensureTaskConsumer } from "../../sdk/worker/jetstream-setup.ts";
import { ResultPublisher } from "../../sdk/worker/result-publisher.ts";
import { TaskRunner } from "../../sdk/worker/task-runner.ts";
import { createEngineDouble, newExecutionId } from "../fixtures/worker/engine-double.ts";
import { useNatsServer } from "../helpers/nats-server.ts";
import { testLogger } from "../helpers/test-logger.ts";

const server = useNatsServer();
const effectDir = mkdtempSync(join(tmpdir(), "baton-claim-race-"));
const examples = pathToFileURL(join(import.meta.dirname, "../../functions/examples.ts")).href;
const cleanups: (() => Promise<void>)[] = [];

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  rmSync(effectDir, { recursive: true, force: true });
});

it("runs an effect once when one worker handles two copies of its task message at once", async () => {
  process.env.BATON_EFFECT_DIR = effectDir; // Isolates copy the environment when they start.
  const engine = await createEngineDouble(server().url);
  cleanups.push(() => engine.close());
  await ensureTaskConsumer(engine.jsm, "effect", "effect-counter");
  const logger = { debug: () => {}, ...testLogger };
  const pool = new IsolatePool({
    modules: [examples],
    heapMb: 64,
    minIdle: 2,
    idleTimeoutMs: 60_000,
    logger,
  });
  cleanups.push(() => pool.close());
  await pool.start();
  const runner = new TaskRunner({
    workerId: "race-worker",
    pool,
    publisher: new ResultPublisher(engine.nc, engine.js, () => 1_048_576),
    logger,
    graceMs: 300,
    retryReportDelayMs: 2_000,
    ledger: new EffectLedger(
      await openBucket(engine.js, buckets.effects, { history: 1, storage: StorageType.File }),
    ),
    workerAlive: () => Promise.resolve(true),
  });

  const execution = newExecutionId("race");
  const idempotencyKey = `${execution}/charge/1`;
  await engine.publishTask({
    function: "effect-counter",
    effect: true,
    idempotencyKey,
    execution,
    input: { n: 1 },
  });
  const consumer = await engine.js.consumers.get(streams.tasks, taskConsumer("effect", "effect-counter"));
  const msg = await consumer.next({ expires: 10_000 });
  expect(msg).not.toBeNull();

  const fn = { name: "effect-counter", module: examples, timeoutMs: undefined, validateInput: undefined };
  await Promise.all([runner.handle(msg!, fn, "effect"), runner.handle(msg!, fn, "effect")]);

  const runs = readFileSync(join(effectDir, encodeURIComponent(idempotencyKey)), "utf8")
    .trim()
    .split("\n");
  expect(runs, runs.join(" | ")).toHaveLength(1);
  const outcome = await engine.waitForOutcome(execution);
  expect(outcome.envelope.type).toBe("task.succeeded");
});
