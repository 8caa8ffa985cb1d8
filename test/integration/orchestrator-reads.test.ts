/**
 * The engine's reads of its durable consumers do not end for good. nats.js stops a consume()
 * with an error on some server answers (a 400, a permissions error on the pull inbox); a real
 * nats-server cannot be made to give one on demand, so this test stops the engine's reads with an
 * error itself, as nats.js does (the one stand-in in this file), against a real nats-server.
 */
import { connect, type ConsumerMessages, type NatsConnection } from "nats";
import { afterAll, beforeAll, expect, it } from "vitest";
import { loadEngineConfig } from "../../engine/config.ts";
import { defaultPartitions } from "../../engine/nats/partitions.ts";
import { Executions } from "../../engine/orchestrator/executions.ts";
import { Orchestrator } from "../../engine/orchestrator/orchestrator.ts";
import { useNatsServer } from "../helpers/nats-server.ts";
import { waitUntil } from "../helpers/processes.ts";
import { testLogger } from "../helpers/test-logger.ts";

const server = useNatsServer();
let nc: NatsConnection;
let engine: Orchestrator;

beforeAll(async () => {
  nc = await connect({ servers: server().url });
  engine = await Orchestrator.create(nc, loadEngineConfig({ NATS_URL: server().url }), testLogger);
  await engine.start();
});

afterAll(async () => {
  await engine?.stop();
  await nc?.close();
});

it("reads its events and timers again when a read ends with an error", async () => {
  const reads = (engine as unknown as { consumers: ConsumerMessages[] }).consumers;
  const before = [...reads];
  // Timers, removals, and the events of each partition the engine holds (all of them: it is alone).
  const count = 2 + defaultPartitions;
  expect(before).toHaveLength(count);
  for (const read of before) read.stop(new Error("400 Bad Request (stand-in for the server's answer)"));
  await waitUntil("every read to be open again", () =>
    reads.length === count && reads.every((read) => !before.includes(read)) ? true : undefined,
  );
  const executions = await Executions.connect(nc);
  await executions.apply(`baton: v1
name: after-reads
steps:
  - { name: nap, wait: 100ms }
  - { name: done, return: ok }
`);
  const { id } = await executions.start("after-reads", {});
  const record = await executions.waitForEnd(id, 20_000);
  expect(record?.status).toBe("succeeded");
  expect(record?.output).toBe("ok");
});
