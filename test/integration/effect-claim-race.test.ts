/**
 * One worker handed the same effect task message twice at once (JetStream delivers it again
 * while the first copy is still claiming it in the ledger: NATS was away past the ack wait, as in
 * recovery.test.ts's outage, where this ran an effect twice). The ledger cannot tell the two
 * copies apart (same stream sequence, same worker), so the worker itself must: the effect runs
 * once. The TaskRunner is driven directly with one real message from a real nats-server, since
 * JetStream cannot be made to redeliver at that very moment on demand; the isolates, the ledger
 * and the reports are real.
 *
 * And a worker handed a message another worker still holds (its ack wait passed: on a NATS
 * cluster, while a stream elects a leader, the holder's "still working" acks and its heartbeat
 * writes can fail for longer than its heartbeat entry lives, as cluster.test.ts saw) does not take
 * the attempt over because the holder's heartbeat entry is gone: it asks the holder, which says it
 * still holds it. Two runners on two connections; the holder has no heartbeat entry at all.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { connect, StorageType } from "nats";
import { afterAll, expect, it, onTestFinished } from "vitest";
import { EffectLedger } from "../../sdk/effect-ledger.ts";
import { buckets, streams, taskConsumer, workersBucketConfig } from "../../sdk/protocol.ts";
import { openBucket } from "../../sdk/replication.ts";
import { answerHoldQueries, holderAlive } from "../../sdk/worker/attempt-holder.ts";
import { IsolatePool } from "../../sdk/worker/isolate-pool.ts";
import { ensureTaskConsumer } from "../../sdk/worker/jetstream-setup.ts";
import { ResultPublisher } from "../../sdk/worker/result-publisher.ts";
import { TaskRunner } from "../../sdk/worker/task-runner.ts";
import { createEngineDouble, newExecutionId } from "../fixtures/worker/engine-double.ts";
import { useNatsServer } from "../helpers/nats-server.ts";
import { waitUntil } from "../helpers/processes.ts";
import { testLogger } from "../helpers/test-logger.ts";

const server = useNatsServer();
const effectDir = mkdtempSync(join(tmpdir(), "baton-claim-race-"));
const examples = pathToFileURL(join(import.meta.dirname, "../../functions/examples.ts")).href;
// Each test's engine double, pools and connections end with it: two engine doubles on one server
// would share the results.
afterAll(() => rmSync(effectDir, { recursive: true, force: true }));

it("runs an effect once when one worker handles two copies of its task message at once", async () => {
  process.env.BATON_EFFECT_DIR = effectDir; // Isolates copy the environment when they start.
  const engine = await createEngineDouble(server().url);
  onTestFinished(() => engine.close());
  await ensureTaskConsumer(engine.jsm, "effect", "effect-counter");
  const logger = { debug: () => {}, ...testLogger };
  const pool = new IsolatePool({
    modules: [examples],
    heapMb: 64,
    minIdle: 2,
    idleTimeoutMs: 60_000,
    logger,
  });
  onTestFinished(() => pool.close());
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

it("does not take over an effect attempt whose holder still runs it, though its heartbeat entry is gone", async () => {
  const gate = join(effectDir, "gate");
  const module = join(effectDir, "slow-effect.mts");
  writeFileSync(
    module,
    `import { appendFileSync, existsSync } from "node:fs";
import { defineFunction } from ${JSON.stringify(join(import.meta.dirname, "../../sdk/index.ts"))};
export const slowEffect = defineFunction({
  name: "slow-effect",
  // One line per run, then it waits for the test to open the gate.
  handler: async (_input: unknown, ctx) => {
    appendFileSync(${JSON.stringify(join(effectDir, "slow-runs"))}, ctx.worker + "\\n");
    while (!existsSync(${JSON.stringify(gate)})) await new Promise((resolve) => setTimeout(resolve, 20));
    return { done: true };
  },
});
`,
  );
  const runs = () =>
    existsSync(join(effectDir, "slow-runs"))
      ? readFileSync(join(effectDir, "slow-runs"), "utf8").trim().split("\n")
      : [];
  const engine = await createEngineDouble(server().url);
  onTestFinished(() => engine.close());
  await ensureTaskConsumer(engine.jsm, "effect", "slow-effect");
  const logger = { debug: () => {}, ...testLogger };
  const workers = await openBucket(engine.js, workersBucketConfig.bucket, {
    ttl: workersBucketConfig.ttlMs,
    history: 1,
    storage: StorageType.File,
  });
  const ledgerBucket = await openBucket(engine.js, buckets.effects, {
    history: 1,
    storage: StorageType.File,
  });
  const runner = async (workerId: string) => {
    const nc = await connect({ servers: server().url });
    const pool = new IsolatePool({
      modules: [pathToFileURL(module).href],
      heapMb: 64,
      minIdle: 1,
      idleTimeoutMs: 60_000,
      logger,
    });
    onTestFinished(async () => {
      await pool.close();
      await nc.close();
    });
    await pool.start();
    const taskRunner: TaskRunner = new TaskRunner({
      workerId,
      pool,
      publisher: new ResultPublisher(nc, nc.jetstream(), () => 1_048_576),
      logger,
      graceMs: 300,
      retryReportDelayMs: 2_000,
      ledger: new EffectLedger(ledgerBucket),
      workerAlive: holderAlive(nc, workers),
    });
    answerHoldQueries(nc, workerId, (attempt) => taskRunner.holds(attempt), logger);
    return taskRunner;
  };
  const [holder, other] = [await runner("holder-worker"), await runner("other-worker")];
  // Neither has a heartbeat entry: the holder's is gone, as after failed writes.
  expect(await workers.get("holder-worker")).toBeNull();

  const execution = newExecutionId("held");
  await engine.publishTask({
    function: "slow-effect",
    effect: true,
    idempotencyKey: `${execution}/charge/1`,
    execution,
    input: {},
  });
  const consumer = await engine.js.consumers.get(streams.tasks, taskConsumer("effect", "slow-effect"));
  const msg = await consumer.next({ expires: 10_000 });
  expect(msg).not.toBeNull();
  const fn = {
    name: "slow-effect",
    module: pathToFileURL(module).href,
    timeoutMs: undefined,
    validateInput: undefined,
  };

  const held = holder.handle(msg!, fn, "effect");
  await waitUntil("the holder to run the effect", () => (runs().length === 1 ? true : undefined));
  // The same message again, at the other worker: it must leave it to the holder.
  let otherSettled = false;
  const again = other.handle(msg!, fn, "effect").finally(() => (otherSettled = true));
  await waitUntil("the other worker to leave the attempt, or to run it too", () =>
    otherSettled || runs().length > 1 ? true : undefined,
  );
  writeFileSync(gate, "");
  await Promise.all([held, again]);
  expect(runs()).toEqual(["holder-worker"]);
  const outcome = await engine.waitForOutcome(execution);
  expect(outcome.envelope.type).toBe("task.succeeded");
});
