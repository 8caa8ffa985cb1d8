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
import { connect, StorageType, type KV } from "nats";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
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

describe("taking over an effect attempt another worker claimed", () => {
  const module = join(effectDir, "slow-effect.mts");
  const runsFile = join(effectDir, "slow-runs");
  const logger = { debug: () => {}, ...testLogger };
  let engine: Awaited<ReturnType<typeof createEngineDouble>>;
  let workers: KV;
  let ledgerBucket: KV;
  const fn = () => ({
    name: "slow-effect",
    module: pathToFileURL(module).href,
    timeoutMs: undefined,
    validateInput: undefined,
  });

  beforeAll(async () => {
    writeFileSync(
      module,
      `import { appendFileSync, existsSync } from "node:fs";
import { defineFunction } from ${JSON.stringify(join(import.meta.dirname, "../../sdk/index.ts"))};
export const slowEffect = defineFunction({
  name: "slow-effect",
  // One line per run (its gate, which names the test, and the worker), then it waits for the test to open the gate; it
  // throws then if asked to.
  handler: async (input: { gate: string; fail?: boolean }, ctx) => {
    appendFileSync(${JSON.stringify(runsFile)}, input.gate + " " + ctx.worker + "\\n");
    while (!existsSync(input.gate)) await new Promise((resolve) => setTimeout(resolve, 20));
    if (input.fail) throw new Error("the effect failed");
    return { done: true };
  },
});
`,
    );
    engine = await createEngineDouble(server().url);
    await ensureTaskConsumer(engine.jsm, "effect", "slow-effect");
    workers = await openBucket(engine.js, workersBucketConfig.bucket, {
      ttl: workersBucketConfig.ttlMs,
      history: 1,
      storage: StorageType.File,
    });
    ledgerBucket = await openBucket(engine.js, buckets.effects, { history: 1, storage: StorageType.File });
  });
  afterAll(() => engine?.close());

  /** The workers that ran the effect of the test whose gate this is, in order. */
  const runs = (gate: string) =>
    (existsSync(runsFile) ? readFileSync(runsFile, "utf8").trim().split("\n") : [])
      .filter((line) => line.startsWith(`${gate} `))
      .map((line) => line.split(" ")[1]);

  /** A runner on a connection of its own that answers hold questions, as start-worker.ts wires it. */
  async function runner(
    workerId: string,
    options: { takeOverAfterMs?: number; holdReports?: Promise<void>; onReport?: () => void } = {},
  ) {
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
    const publisher = new ResultPublisher(nc, nc.jetstream(), () => 1_048_576);
    if (options.holdReports !== undefined) {
      // The report held back, as while a stream elects a leader: nothing real can be made to
      // wait on demand at that point, so the publish waits on the test.
      const publish = publisher.publish.bind(publisher);
      const until = options.holdReports;
      publisher.publish = async (...args) => {
        options.onReport?.();
        await until;
        return publish(...args);
      };
    }
    const taskRunner: TaskRunner = new TaskRunner({
      workerId,
      pool,
      publisher,
      logger,
      graceMs: 300,
      retryReportDelayMs: 2_000,
      ledger: new EffectLedger(ledgerBucket),
      workerAlive: holderAlive(nc, workers, logger, options),
    });
    answerHoldQueries(nc, workerId, (attempt) => taskRunner.holds(attempt), logger);
    return { taskRunner, nc };
  }

  /** Publishes one effect task and takes its message (handed to runners directly, as often as wanted). */
  async function oneTask(input: { gate: string; fail?: boolean }) {
    const execution = newExecutionId("held");
    await engine.publishTask({
      function: "slow-effect",
      effect: true,
      idempotencyKey: `${execution}/charge/1`,
      execution,
      input,
    });
    const consumer = await engine.js.consumers.get(streams.tasks, taskConsumer("effect", "slow-effect"));
    // An earlier test's message, nak'd by its other worker, comes back: ended here.
    for (;;) {
      const msg = await consumer.next({ expires: 10_000 });
      expect(msg).not.toBeNull();
      if (msg!.json<{ execution: string }>().execution === execution) return { execution, msg: msg! };
      msg!.term();
    }
  }

  it("leaves an attempt to its holder that still runs it, though the holder's heartbeat entry is gone", async () => {
    const gate = join(effectDir, "gate-1");
    const [holder, other] = [await runner("holder-1"), await runner("other-1")];
    // Neither has a heartbeat entry: the holder's is gone, as after failed writes.
    expect(await workers.get("holder-1")).toBeNull();
    const { execution, msg } = await oneTask({ gate });

    const held = holder.taskRunner.handle(msg, fn(), "effect");
    await waitUntil("the holder to run the effect", () => (runs(gate).length === 1 ? true : undefined));
    // The same message again, at the other worker: it must leave it to the holder.
    let otherSettled = false;
    const again = other.taskRunner.handle(msg, fn(), "effect").finally(() => (otherSettled = true));
    await waitUntil("the other worker to leave the attempt, or to run it too", () =>
      otherSettled || runs(gate).length > 1 ? true : undefined,
    );
    writeFileSync(gate, "");
    await Promise.all([held, again]);
    expect(runs(gate)).toEqual(["holder-1"]);
    const outcome = await engine.waitForOutcome(execution);
    expect(outcome.envelope.type).toBe("task.succeeded");
  });

  it("leaves it to a holder whose effect failed and which is still reporting it", async () => {
    // A failed effect leaves nothing in the ledger: only the holder knows it ran.
    const gate = join(effectDir, "gate-2");
    let releaseReports: () => void = () => {};
    const holdReports = new Promise<void>((resolve) => (releaseReports = resolve));
    let reporting = false;
    const [holder, other] = [
      await runner("holder-2", { holdReports, onReport: () => (reporting = true) }),
      await runner("other-2"),
    ];
    const { execution, msg } = await oneTask({ gate, fail: true });
    writeFileSync(gate, "");
    const held = holder.taskRunner.handle(msg, fn(), "effect");
    await waitUntil("the holder to report the failed effect", () => (reporting ? true : undefined));
    expect(runs(gate)).toEqual(["holder-2"]);
    // The effect failed; the holder's report waits. The message comes to the other worker.
    await other.taskRunner.handle(msg, fn(), "effect");
    expect(runs(gate)).toEqual(["holder-2"]);
    releaseReports();
    await held;
    const outcome = await engine.waitForOutcome(execution);
    expect(outcome.envelope.type).toBe("task.failed");
  });

  it("takes it over from a holder that stays gone (no answer, no heartbeat entry), not at once", async () => {
    const gate = join(effectDir, "gate-3");
    const takeOverAfterMs = 1_000;
    const holder = await runner("holder-3");
    const other = await runner("other-3", { takeOverAfterMs });
    const { msg } = await oneTask({ gate });
    void holder.taskRunner.handle(msg, fn(), "effect");
    await waitUntil("the holder to run the effect", () => (runs(gate).length === 1 ? true : undefined));
    // The holder's connection goes: it no longer answers, and it has no heartbeat entry.
    await holder.nc.close();
    const firstAsked = Date.now();
    await other.taskRunner.handle(msg, fn(), "effect");
    expect(runs(gate), "taken over at once").toEqual(["holder-3"]);
    // Handed again (as JetStream does every 2 s) until the holder has seemed gone long enough.
    while (Date.now() - firstAsked < takeOverAfterMs)
      await new Promise((resolve) => setTimeout(resolve, 100));
    const takenOver = other.taskRunner.handle(msg, fn(), "effect");
    await waitUntil("the other worker to run the effect", () => (runs(gate).length === 2 ? true : undefined));
    writeFileSync(gate, "");
    await takenOver;
    expect(runs(gate)).toEqual(["holder-3", "other-3"]);
  });
});
