/**
 * Tasks sent ahead of their write (orchestrator.ts `sendAhead`): a step's task leaves beside the
 * write of the transition that dispatches it. Here that write fails after its task went and was
 * answered. The answer came before the attempt was on record: it must wait for the transition to
 * be made again (`isEarlyReport`), not be passed over as stale, since the task sent again is a
 * duplicate JetStream drops, and the attempt would then never be settled.
 *
 * The failed write is injected (the store's update throws a timeout once): a real nats-server
 * cannot be made to fail one chosen write after a chosen answer has arrived.
 */
import { connect, type NatsConnection } from "nats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadEngineConfig } from "../../engine/config.ts";
import type { StoredRecord } from "../../engine/nats/execution-store.ts";
import type { ExecutionRecord } from "../../engine/orchestrator/execution-record.ts";
import { Executions } from "../../engine/orchestrator/executions.ts";
import { Orchestrator } from "../../engine/orchestrator/orchestrator.ts";
import { useNatsServer } from "../helpers/nats-server.ts";
import { serveScripted, type ScriptedWorker } from "../helpers/scripted-worker.ts";
import { testLogger } from "../helpers/test-logger.ts";
import { waitUntil } from "../helpers/processes.ts";

const server = useNatsServer();
let nc: NatsConnection;
let engine: Orchestrator;
let executions: Executions;
let worker: ScriptedWorker;

type Update = (record: ExecutionRecord, revision: number) => Promise<StoredRecord<ExecutionRecord>>;

beforeAll(async () => {
  nc = await connect({ servers: server().url });
  engine = await Orchestrator.create(nc, loadEngineConfig({ NATS_URL: server().url }), testLogger);
  await engine.start();
  executions = await Executions.connect(nc);
  worker = await serveScripted(nc, { inc: (input) => ({ n: (input as { n: number }).n + 1 }) });
});

afterAll(async () => {
  worker?.stop();
  await engine?.stop();
  await nc?.close();
});

describe("tasks sent ahead of their write", () => {
  it("settles an attempt whose report came before the write that dispatched it was made again", async () => {
    await executions.apply(`baton: v1
name: ahead
steps:
  - { name: a, call: inc }
  - { name: b, call: inc }
`);
    const { store, mailboxes } = engine as unknown as {
      store: { update: Update };
      mailboxes: Map<string, { event: { type: string } }[]>;
    };
    const update = store.update.bind(store);
    let failed = false;
    // The write that dispatches `b` fails once, after `b`'s task (sent ahead) has been answered.
    store.update = async (record, revision) => {
      const dispatchesB = record.outbox.some(
        (command) => command.type === "dispatchTask" && (command.params as { step?: string }).step === "b",
      );
      if (failed || !dispatchesB) return update(record, revision);
      failed = true;
      // Its answer has reached the engine, and waits behind this write.
      await waitUntil("b's answer to wait for the write", () =>
        mailboxes.get(record.id)?.some((delivery) => delivery.event.type === "task.succeeded")
          ? true
          : undefined,
      );
      throw new Error("TIMEOUT (injected)");
    };
    try {
      const { id } = await executions.start("ahead", { n: 1 });
      const record = await executions.waitForEnd(id, 15_000);
      expect(failed).toBe(true);
      expect(record?.status).toBe("succeeded");
      expect(record?.output).toEqual({ n: 3 });
      // `b` ran once: its task sent again was a duplicate, and its one answer settled the attempt.
      const tasksOfB = worker.tasks.filter((task) => task.execution === id && task.step === "b");
      expect(tasksOfB.map((task) => task.attempt)).toEqual([1]);
      const history = await executions.history(id);
      expect(history.filter((entry) => entry.type === "AttemptSucceeded").map((entry) => entry.step)).toEqual(
        ["a", "b"],
      );
      expect(history.map((entry) => entry.seq)).toEqual(history.map((_, index) => index + 1));
    } finally {
      store.update = update;
    }
  });
});
