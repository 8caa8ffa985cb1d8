/**
 * A task for a function nobody serves does not wait forever, nor end as a bare `Timeout`: when its
 * attempt times out and no live worker's heartbeat names the function, the attempt fails
 * `FunctionUnavailable`. A function whose worker is alive but slow still times out as `Timeout`.
 */
import { connect, type NatsConnection } from "nats";
import { afterAll, beforeAll, expect, it } from "vitest";
import { loadEngineConfig } from "../../engine/config.ts";
import { Executions } from "../../engine/orchestrator/executions.ts";
import { Orchestrator } from "../../engine/orchestrator/orchestrator.ts";
import { protocolVersion, subjects, type HeartbeatEnvelope } from "../../sdk/protocol.ts";
import { useNatsServer } from "../helpers/nats-server.ts";
import { waitUntil } from "../helpers/processes.ts";
import { testLogger } from "../helpers/test-logger.ts";

const server = useNatsServer();
let nc: NatsConnection;
let engine: Orchestrator;
let executions: Executions;
let heartbeats: NodeJS.Timeout;

beforeAll(async () => {
  nc = await connect({ servers: server().url });
  engine = await Orchestrator.create(nc, loadEngineConfig({ NATS_URL: server().url }), testLogger);
  await engine.start();
  executions = await Executions.connect(nc);
  // A live worker that names `slowpoke` in its heartbeats but never takes its tasks.
  const beat: HeartbeatEnvelope = {
    v: protocolVersion,
    worker: "slow-worker",
    node: "test",
    functions: [{ name: "slowpoke", lane: "pure" }],
    concurrency: 1,
    effectConcurrency: 1,
    running: 0,
    startedAt: Date.now(),
  };
  heartbeats = setInterval(() => nc.publish(subjects.heartbeat("slow-worker"), JSON.stringify(beat)), 500);
});

afterAll(async () => {
  clearInterval(heartbeats);
  await engine?.stop();
  await nc?.close();
});

const workflow = (name: string, fn: string) => `baton: v1
name: ${name}
steps:
  - name: ask
    call: ${fn}
    # Longer than a worker's time to live (6 s): the engine has heard every live worker by then.
    timeout: 7s
    retry: { attempts: 1 }
`;

it("fails an attempt nobody could take with FunctionUnavailable, and a slow one with Timeout", async () => {
  await executions.apply(workflow("lonely", "nobody-serves-this"));
  await executions.apply(workflow("patient", "slowpoke"));
  const lonely = await executions.start("lonely", {});
  const patient = await executions.start("patient", {});
  const ended = async (id: string) =>
    waitUntil(
      `${id} to end`,
      async () => {
        const record = await executions.get(id);
        return record && record.status !== "running" && record.status !== "waiting" ? record : undefined;
      },
      { timeoutMs: 30_000 },
    );
  const [unserved, slow] = await Promise.all([ended(lonely.id), ended(patient.id)]);
  expect(unserved.status).toBe("failed");
  expect(unserved.error).toMatchObject({ code: "FunctionUnavailable" });
  expect(unserved.error!.message).toMatch(/no worker serves "nobody-serves-this"/);
  expect(slow.status).toBe("failed");
  expect(slow.error).toMatchObject({ code: "Timeout" });
});
