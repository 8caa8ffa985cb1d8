/**
 * Poison events: an event that fails every time it is applied is set aside on BATON_POISON with
 * the reason, and its execution fails with `EventPoisoned` instead of the event looping forever.
 * The fault is real: the execution's workflow revision is removed from the workflows bucket under
 * a running execution (an operator's slip, or a bucket restored from an old backup), so applying
 * any event to it fails the same way every time.
 */
import { eventsHeld } from "../helpers/event-consumers.ts";
import { connect, type NatsConnection } from "nats";
import { afterAll, beforeAll, expect, it } from "vitest";
import { loadEngineConfig } from "../../engine/config.ts";
import { Executions } from "../../engine/orchestrator/executions.ts";
import { Orchestrator } from "../../engine/orchestrator/orchestrator.ts";
import { poisonStream } from "../../engine/nats/topology.ts";
import { buckets } from "../../sdk/protocol.ts";
import { useNatsServer } from "../helpers/nats-server.ts";
import { waitUntil } from "../helpers/processes.ts";
import { testLogger } from "../helpers/test-logger.ts";

const server = useNatsServer();
let nc: NatsConnection;
let engine: Orchestrator | undefined;
let executions: Executions;

beforeAll(async () => {
  nc = await connect({ servers: server().url });
  executions = await Executions.connect(nc);
});

afterAll(async () => {
  await engine?.stop();
  await nc?.close();
});

const startEngine = async () => {
  engine = await Orchestrator.create(nc, loadEngineConfig({ NATS_URL: server().url }), testLogger);
  await engine.start();
};

it("sets aside an event that can never be applied, and fails its execution clearly", async () => {
  await executions.apply(`baton: v1
name: approval
steps:
  - name: wait-for-approval
    receive: { signal: approve }
`);
  await startEngine();
  const { id } = await executions.start("approval", {});
  await waitUntil("the execution to wait for its signal", async () =>
    (await executions.get(id))?.status === "waiting" ? true : undefined,
  );
  // A fresh engine (no compiled workflow in memory) finds the revision gone.
  await engine!.stop();
  const workflows = await nc.jetstream().views.kv(buckets.workflows);
  await workflows.purge("approval.r1");
  await startEngine();

  await executions.signal(id, "approve", { by: "ana" });
  const failed = await waitUntil(
    "the execution to fail with EventPoisoned",
    async () => {
      const record = await executions.get(id);
      return record?.status === "failed" ? record : undefined;
    },
    { timeoutMs: 30_000 },
  );
  expect(failed.error).toMatchObject({
    code: "EventPoisoned",
    retryable: false,
    details: { event: "signal" },
  });
  expect(failed.error!.message).toMatch(/revision 1 is missing/);
  // The history of the failing write is published after the write: wait for it to be there.
  const history = await waitUntil("the failure in the history", async () => {
    const entries = await executions.history(id);
    return entries.at(-1)?.type === "ExecutionFailed" ? entries : undefined;
  });
  expect(history.at(-1)).toMatchObject({ type: "ExecutionFailed" });

  // The event is kept, with the reason, for a person to look at; and it is gone from the events.
  const jsm = await nc.jetstreamManager();
  const poison = await jsm.streams.getMessage(poisonStream, { last_by_subj: `baton.poison.${id}` });
  expect(poison.json()).toMatchObject({ execution: id, event: { type: "signal", name: "approve" } });
  await waitUntil("the events consumer to hold nothing", async () => {
    const held = await eventsHeld(jsm);
    return held.pending === 0 && held.unacknowledged === 0 ? true : undefined;
  });
});
