/**
 * Queue triggers against a real nats-server: messages on a queue subject, read through a durable
 * consumer two replicas share, each become one TriggerEvent; messages published while no engine
 * runs are handled once one is back; a subject BATON_EMITTED captures is read from there.
 * Publishes are counted on the core subject, where even a duplicate JetStream drops shows up.
 */
import { connect, type NatsConnection } from "nats";
import { afterAll, beforeAll, expect, it } from "vitest";
import { captureEmitSubjects, emittedStream } from "../../engine/nats/emit-stream.ts";
import { ensureTopology, type Topology } from "../../engine/nats/topology.ts";
import { WorkflowStore } from "../../engine/nats/workflow-store.ts";
import { QueueService, queueConsumer } from "../../engine/triggers/queue-service.ts";
import { triggerSubject, type TriggerEvent } from "../../engine/triggers/trigger-event.ts";
import type { WorkflowDefinition } from "../../engine/workflow/definition.ts";
import { useNatsServer } from "../helpers/nats-server.ts";
import { testLogger } from "../helpers/test-logger.ts";
import { waitUntil } from "../helpers/processes.ts";

const server = useNatsServer();
let nc: NatsConnection;
let topology: Topology;
let store: WorkflowStore;
const events: TriggerEvent[] = [];

beforeAll(async () => {
  nc = await connect({ servers: server().url });
  topology = await ensureTopology(nc);
  store = new WorkflowStore(topology.workflows);
  nc.subscribe(triggerSubject("queue"), {
    callback: (_error, message) => events.push(message.json<TriggerEvent>()),
  });
});

const replicas: { nc: NatsConnection; service: QueueService }[] = [];
async function startReplica() {
  const connection = await connect({ servers: server().url });
  const { js, jsm, workflows } = await ensureTopology(connection);
  const replica = {
    nc: connection,
    service: await QueueService.start({ js, jsm, workflows, log: testLogger }),
  };
  replicas.push(replica);
  return replica;
}
async function stopAll() {
  for (const replica of replicas.splice(0)) {
    await replica.service.stop();
    await replica.nc.close();
  }
}
afterAll(async () => {
  await stopAll();
  await nc?.close();
});

const queued = (name: string, subject: string): WorkflowDefinition => ({
  baton: "v1",
  name,
  triggers: [{ queue: { subject } }],
  steps: [{ name: "a", return: 1 }],
});
const on = (subject: string) => events.filter((event) => event.subject === subject);
const consuming = (subject: string) => () =>
  replicas.every((replica) => replica.service.subjects().includes(subject)) ? true : undefined;

it("turns each message into one event, with two replicas sharing the consumer", async () => {
  await startReplica();
  await startReplica();
  await store.put(queued("resize", "images.uploaded"), "resize");
  await waitUntil("both replicas consume", consuming("images.uploaded"));
  for (let index = 0; index < 20; index++)
    await topology.js.publish("images.uploaded", JSON.stringify({ index }));
  await topology.js.publish("images.uploaded", "plain text");
  await waitUntil("21 events", () => (on("images.uploaded").length >= 21 ? true : undefined));
  const ids = on("images.uploaded").map((event) => event.id);
  expect(new Set(ids).size).toBe(ids.length);
  expect(ids.length).toBe(21);
  expect(on("images.uploaded").map((event) => event.data)).toEqual(
    expect.arrayContaining([{ index: 0 }, { index: 19 }, "plain text"]),
  );
  expect(on("images.uploaded")[0]).toMatchObject({ source: "queue", type: "message" });
  expect(on("images.uploaded")[0]!.id).toMatch(new RegExp(`^${emittedStream}:\\d+$`));
}, 30_000);

it("handles the messages published while no engine ran once one is back", async () => {
  await stopAll();
  const before = on("images.uploaded").length;
  // JetStream acknowledges each publish: the stream holds them with no engine running.
  for (let index = 0; index < 3; index++)
    await topology.js.publish("images.uploaded", JSON.stringify({ offline: index }));
  await startReplica();
  await waitUntil("three more events", () => (on("images.uploaded").length >= before + 3 ? true : undefined));
  // In any order: a message the stopped replica's last pull request took (the server can hand
  // it one more before it sees the connection gone) comes back after the consumer's ack wait,
  // behind the others. Queue triggers promise every message once, not their order.
  const offline = on("images.uploaded")
    .slice(before)
    .map((event) => (event.data as { offline: number }).offline);
  expect(offline.sort()).toEqual([0, 1, 2]);
}, 30_000);

it("reads a subject an emit step already captures from BATON_EMITTED, and one another stream captures from there", async () => {
  await captureEmitSubjects(topology.jsm, ["weather.raw"]);
  await topology.jsm.streams.add({ name: "OPERATOR_ORDERS", subjects: ["orders.>"] });
  await store.put(queued("ingest", "weather.raw"), "ingest");
  await store.put(queued("orders", "orders.paid"), "orders");
  await waitUntil("consuming both", () =>
    consuming("weather.raw")() && consuming("orders.paid")() ? true : undefined,
  );
  await topology.js.publish("weather.raw", JSON.stringify({ celsius: 21 }));
  await topology.js.publish("orders.paid", JSON.stringify({ order: 7 }));
  const [weather] = await waitUntil("weather event", () =>
    on("weather.raw").length > 0 ? on("weather.raw") : undefined,
  );
  const [order] = await waitUntil("order event", () =>
    on("orders.paid").length > 0 ? on("orders.paid") : undefined,
  );
  expect(weather?.id).toMatch(/^BATON_EMITTED:/);
  expect(weather?.data).toEqual({ celsius: 21 });
  expect(order?.id).toMatch(/^OPERATOR_ORDERS:/);
  expect(order?.data).toEqual({ order: 7 });
}, 30_000);

it("never consumes a reserved subject, even from a workflow stored without the validator", async () => {
  await startReplica();
  // Written straight to the store: the validator would refuse these subjects.
  await store.put(
    {
      baton: "v1",
      name: "thief",
      triggers: [
        { queue: { subject: "baton.events.>" } },
        { queue: { subject: ">" } },
        { queue: { subject: "orders.fenced" } },
      ],
      steps: [{ name: "a", return: 1 }],
    },
    "thief",
  );
  await waitUntil("the allowed subject is consumed", consuming("orders.fenced"));
  for (const replica of replicas) expect(replica.service.subjects()).not.toContain("baton.events.>");
  for (const replica of replicas) expect(replica.service.subjects()).not.toContain(">");
  const consumers = await topology.jsm.consumers.list("BATON_EVENTS").next();
  expect(consumers.map((consumer) => consumer.name)).not.toContain(queueConsumer("baton.events.>"));
  await stopAll();
});
