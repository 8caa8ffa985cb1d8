/**
 * Partitioned ownership (docs/operations.md, "Scaling and failure"): two engines share the
 * partitions, each consumes only its own, so the hot path meets no compare-and-set conflict; an
 * engine that stops hands its partitions back and the other takes them at once. Real nats-server,
 * two orchestrators on connections of their own, a scripted worker. (An engine that dies is
 * test/system/partitions.test.ts: that needs a process to kill.)
 */
import { connect, type NatsConnection } from "nats";
import { afterAll, beforeAll, expect, it } from "vitest";
import { loadEngineConfig } from "../../engine/config.ts";
import { defaultPartitions } from "../../engine/nats/partitions.ts";
import { Executions } from "../../engine/orchestrator/executions.ts";
import { Orchestrator } from "../../engine/orchestrator/orchestrator.ts";
import { useNatsServer } from "../helpers/nats-server.ts";
import { waitUntil } from "../helpers/processes.ts";
import { serveScripted, type ScriptedWorker } from "../helpers/scripted-worker.ts";
import { testLogger } from "../helpers/test-logger.ts";

const server = useNatsServer();
const connections: NatsConnection[] = [];
let worker: ScriptedWorker;
let executions: Executions;

/** Takeovers seen: an engine that looked gone to the other (a process stalled for 1.5 s). */
const takeovers: string[] = [];
const watchingLogger = {
  ...testLogger,
  info: (message: string, fields?: object) => {
    if (message.startsWith("took over")) takeovers.push(JSON.stringify(fields));
  },
};

async function startEngine(name: string): Promise<Orchestrator> {
  const nc = await connect({ servers: server().url, name });
  connections.push(nc);
  const engine = await Orchestrator.create(
    nc,
    loadEngineConfig({ NATS_URL: server().url, BATON_ENGINE_ID: name }),
    watchingLogger,
  );
  await engine.start();
  return engine;
}

beforeAll(async () => {
  const nc = await connect({ servers: server().url });
  connections.push(nc);
  executions = await Executions.connect(nc);
  worker = await serveScripted(nc, { echo: (input) => input });
  await executions.apply(`baton: v1
name: three-steps
steps:
  - { name: one, call: echo, with: "\${ $input }" }
  - { name: two, call: echo, with: "\${ $steps.one.output + 1 }" }
  - { name: three, call: echo, with: "\${ $steps.two.output + 1 }" }
`);
});

afterAll(async () => {
  worker?.stop();
  for (const nc of connections) await nc.close();
});

it("shares the partitions between two engines, which then never race for an execution", async () => {
  const a = await startEngine("engine-a");
  expect(a.partitionsHeld).toHaveLength(defaultPartitions);
  const b = await startEngine("engine-b");
  // The first engine hands back what is beyond its share once it sees the second.
  await waitUntil("the partitions to be shared", () =>
    a.partitionsHeld.length === defaultPartitions / 2 && b.partitionsHeld.length === defaultPartitions / 2
      ? true
      : undefined,
  );
  expect([...a.partitionsHeld, ...b.partitionsHeld].sort((x, y) => x - y)).toEqual(
    Array.from({ length: defaultPartitions }, (_, partition) => partition),
  );
  const before = { a: { ...a.counts }, b: { ...b.counts } };

  const started = await Promise.all(
    Array.from({ length: 200 }, (_, i) => executions.start("three-steps", i)),
  );
  const ended = await Promise.all(started.map(({ id }) => executions.waitForEnd(id, 60_000)));
  expect(ended.map((record) => record?.status)).toEqual(started.map(() => "succeeded"));
  expect(ended.map((record) => record?.output)).toEqual(started.map((_, i) => i + 2));

  // Both engines worked, and neither ever lost a compare-and-set to the other.
  expect(a.counts.writes - before.a.writes).toBeGreaterThan(0);
  expect(b.counts.writes - before.b.writes).toBeGreaterThan(0);
  // (Unless one engine stalled long enough for the other to see it gone, which a loaded machine
  // can do: then partitions changed hands mid-run, and a conflict is the fence doing its work.)
  const conflicts = a.counts.conflicts - before.a.conflicts + (b.counts.conflicts - before.b.conflicts);
  if (takeovers.length === 0) expect(conflicts).toBe(0);
  else console.warn(`partitions.test: ${takeovers.length} takeover(s) mid-run, ${conflicts} conflict(s)`);

  // An engine that stops hands its partitions back; the other takes them within a few ticks.
  await b.stop();
  await waitUntil("the remaining engine to hold every partition", () =>
    a.partitionsHeld.length === defaultPartitions ? true : undefined,
  );
  const after = await Promise.all(Array.from({ length: 50 }, (_, i) => executions.start("three-steps", i)));
  for (const { id } of after) expect((await executions.waitForEnd(id, 60_000))?.status).toBe("succeeded");
  await a.stop();
});

it("refuses an engine told another partition count than the deployment's", async () => {
  const nc = await connect({ servers: server().url });
  connections.push(nc);
  await expect(
    Orchestrator.create(nc, loadEngineConfig({ NATS_URL: server().url, BATON_PARTITIONS: "32" }), testLogger),
  ).rejects.toThrow(/BATON_PARTITIONS=32, but this deployment was started with 16 partitions/);
  // Unset, or the same, it agrees.
  const agreeing = await Orchestrator.create(
    nc,
    loadEngineConfig({ NATS_URL: server().url, BATON_PARTITIONS: "16" }),
    testLogger,
  );
  expect(agreeing).toBeDefined();
});
