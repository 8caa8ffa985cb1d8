/**
 * Infra triggers from real worker processes (`baton worker`), heard by two engine-side replicas
 * of the infra service: each node and function transition is announced exactly once. Publishes
 * are counted on the core subject, where even a duplicate JetStream would drop shows up.
 */
import { hostname } from "node:os";
import { join } from "node:path";
import fastify from "fastify";
import { connect, type NatsConnection } from "nats";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { ApiContext } from "../../engine/api/context.ts";
import { workerRoutes } from "../../engine/api/routes/workers.ts";
import { sharedSchemas } from "../../engine/api/schemas.ts";
import { InfraService } from "../../engine/triggers/infra-service.ts";
import { triggerSubject, type TriggerEvent } from "../../engine/triggers/trigger-event.ts";
import { useNatsServer } from "../helpers/nats-server.ts";
import { testLogger } from "../helpers/test-logger.ts";
import { killAllProcesses, spawnProcess, waitUntil, type TestProcess } from "../helpers/processes.ts";

const server = useNatsServer();
const root = join(import.meta.dirname, "../..");
const silenceMs = 3_000;
const events: TriggerEvent[] = [];
let nc: NatsConnection;
const replicas: InfraService[] = [];
const connections: NatsConnection[] = [];

beforeAll(async () => {
  nc = await connect({ servers: server().url });
  nc.subscribe(triggerSubject("infra"), {
    callback: (_error, message) => events.push(message.json<TriggerEvent>()),
  });
  for (let index = 0; index < 2; index++) {
    const connection = await connect({ servers: server().url });
    connections.push(connection);
    replicas.push(
      await InfraService.start({ nc: connection, js: connection.jetstream(), log: testLogger, silenceMs }),
    );
  }
});
afterAll(async () => {
  await killAllProcesses();
  for (const replica of replicas) await replica.stop();
  for (const connection of connections) await connection.close();
  await nc?.close();
});

async function startWorker(module: string): Promise<TestProcess> {
  const worker = spawnProcess(process.execPath, [join(root, "bin/baton.mjs"), "worker", join(root, module)], {
    name: module,
    env: { NATS_URL: server().url, BATON_LOG_LEVEL: "info" },
  });
  await worker.waitForLine(/"msg":"serving"/);
  return worker;
}

const count = (type: string, subject: string) =>
  events.filter((event) => event.type === type && event.subject === subject).length;
const announced = (type: string, subject: string) => () => (count(type, subject) > 0 ? true : undefined);

it("announces nodes and functions coming and going, once each", async () => {
  const node = hostname();
  const examples = await startWorker("functions/examples.ts");
  await waitUntil("node.joined", announced("node.joined", node));
  await waitUntil("echo available", announced("function.available", "echo"));

  const noop = await startWorker("functions/noop.ts");
  await waitUntil("noop available", announced("function.available", "noop"));

  // GET /v1/workers, the route alone (it needs only the NATS connection of the API's context).
  const app = fastify();
  for (const schema of sharedSchemas) app.addSchema(schema);
  await app.register(workerRoutes({ executions: { connection: nc } } as unknown as ApiContext));
  const listed = await waitUntil("both workers listed", async () => {
    const { items } = (await app.inject({ url: "/v1/workers" })).json<{
      items: { node: string; functions: { name: string }[] }[];
    }>();
    return items.length === 2 ? items : undefined;
  });
  expect(listed.every((worker) => worker.node === node)).toBe(true);
  expect(listed.flatMap((worker) => worker.functions.map((fn) => fn.name))).toEqual(
    expect.arrayContaining(["echo", "noop"]),
  );
  await app.close();

  // A clean stop sends a `leaving` heartbeat: noop goes at once (once the replicas have listened
  // long enough to trust their own silence), the node stays, examples' worker still serves it.
  await noop.kill("SIGTERM");
  await waitUntil("noop unavailable", announced("function.unavailable", "noop"), { timeoutMs: 10_000 });

  // A crash sends nothing: the node leaves after the silence.
  await examples.kill("SIGKILL");
  await waitUntil("node.left", announced("node.left", node), { timeoutMs: 10_000 });
  await waitUntil("echo unavailable", announced("function.unavailable", "echo"), { timeoutMs: 10_000 });

  for (const [type, subject] of [
    ["node.joined", node],
    ["node.left", node],
    ["function.available", "echo"],
    ["function.available", "noop"],
    ["function.unavailable", "noop"],
    ["function.unavailable", "echo"],
  ] as const)
    expect(count(type, subject), `${type} ${subject}`).toBe(1);
  expect(count("function.unavailable", "add")).toBe(1);
  expect(events.every((event) => event.source === "infra")).toBe(true);
  expect(new Set(events.map((event) => event.id)).size).toBe(events.length);
}, 60_000);
