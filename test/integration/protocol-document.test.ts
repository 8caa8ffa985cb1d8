/**
 * docs/protocol.md tried as a new user would: the JetStream API requests it shows are sent, as
 * written, to a real nats-server, and must be accepted and give what the engine itself creates.
 */
import { readFileSync } from "node:fs";
import { connect, type NatsConnection } from "nats";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ensureTopology } from "../../engine/nats/topology.ts";
import { streamConfigs, taskConsumerConfig } from "../../sdk/protocol.ts";
import { useNatsServer } from "../helpers/nats-server.ts";

const server = useNatsServer();
let nc: NatsConnection;

beforeAll(async () => {
  nc = await connect({ servers: server().url });
});
afterAll(async () => nc?.close());

/** Every ```json block of the page, parsed. */
const examples = [
  ...readFileSync(new URL("../../docs/protocol.md", import.meta.url), "utf8").matchAll(
    /```json\n([\s\S]*?)```/g,
  ),
].map(([, body]) => JSON.parse(body!) as Record<string, unknown>);

async function apiRequest(subject: string, body: unknown): Promise<Record<string, unknown>> {
  const reply = (await nc.request(subject, JSON.stringify(body), { timeout: 5_000 })).json<
    Record<string, unknown>
  >();
  expect(reply.error, `${subject}: ${JSON.stringify(reply.error)}`).toBeUndefined();
  return reply;
}

it("accepts the stream and consumer requests the page shows, and they match what the engine creates", async () => {
  const streamRequests = examples.filter(
    (example) => typeof example.name === "string" && "subjects" in example,
  );
  expect(streamRequests.map((example) => example.name).sort()).toEqual(["BATON_EVENTS", "BATON_TASKS"]);
  for (const body of streamRequests) await apiRequest(`$JS.API.STREAM.CREATE.${String(body.name)}`, body);

  const consumerRequests = examples.filter(
    (example) =>
      "durable_name" in example || "durable_name" in ((example.config as object | undefined) ?? {}),
  );
  expect(consumerRequests).toHaveLength(1);
  const body = consumerRequests[0] as { config?: { durable_name: string }; durable_name?: string };
  const durable = body.config?.durable_name ?? body.durable_name;
  const created = await apiRequest(`$JS.API.CONSUMER.DURABLE.CREATE.BATON_TASKS.${durable}`, body);
  // What the SDK would have created for the same function and lane.
  const sdk = taskConsumerConfig("pure", "thumbnail");
  expect(created.config).toMatchObject({ ...sdk });

  // The engine finds them as they should be, and leaves them.
  await ensureTopology(nc);
  const jsm = await nc.jetstreamManager();
  for (const config of Object.values(streamConfigs)) {
    const info = await jsm.streams.info(config.name);
    expect(info.config).toMatchObject({ subjects: config.subjects, retention: "workqueue", storage: "file" });
    expect(info.config.duplicate_window).toBe(config.duplicate_window);
  }
});
