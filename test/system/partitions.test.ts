/**
 * An engine that dies loses its partitions to the others (docs/operations.md, "Scaling and
 * failure"): two real engine processes share the partitions; one is killed with SIGKILL while
 * executions of its partitions wait for a signal; the other takes its partitions over once their
 * leases lapse, and every execution finishes, its signal applied once. Real nats-server and
 * `baton engine` processes.
 */
import { join } from "node:path";
import { connect, type NatsConnection } from "nats";
import { afterAll, beforeAll, expect, it } from "vitest";
import { defaultPartitions } from "../../engine/nats/partitions.ts";
import { engineStateBucket, partitionConsumer } from "../../engine/nats/topology.ts";
import { Executions } from "../../engine/orchestrator/executions.ts";
import { leaseHolders } from "../../engine/orchestrator/partition-leases.ts";
import { partitionOf, streams } from "../../sdk/protocol.ts";
import { useNatsServer } from "../helpers/nats-server.ts";
import { killAllProcesses, spawnProcess, waitUntil, type TestProcess } from "../helpers/processes.ts";

const root = join(import.meta.dirname, "../..");
const server = useNatsServer();
let nc: NatsConnection;
let executions: Executions;

async function startEngine(name: string): Promise<TestProcess> {
  const engine = spawnProcess(process.execPath, [join(root, "bin/baton.mjs"), "engine"], {
    name,
    env: { ...process.env, NATS_URL: server().url, BATON_ENGINE_ID: name, BATON_LOG_LEVEL: "warn" },
  });
  await engine.waitForLine(/engine ready/);
  return engine;
}

/** Who each partition's lease names now, by engine name. */
const holders = async () => leaseHolders(await nc.jetstream().views.kv(engineStateBucket), defaultPartitions);

beforeAll(async () => {
  nc = await connect({ servers: server().url });
  executions = await Executions.connect(nc);
  await executions.apply(`baton: v1
name: gated
steps:
  - { name: gate, receive: { signal: go } }
  - { name: done, return: "\${ $steps.gate.output.n }" }
`);
});

afterAll(async () => {
  await killAllProcesses();
  await nc?.close();
});

it("moves a killed engine's partitions to the other engine, and every execution finishes", async () => {
  const a = await startEngine("engine-a");
  const b = await startEngine("engine-b");
  const shared = await waitUntil("the partitions to be shared", async () => {
    const now = await holders();
    const ofA = now.filter((owner) => owner === "engine-a").length;
    return ofA === defaultPartitions / 2 && now.every((owner) => owner !== undefined) ? now : undefined;
  });

  const started = await Promise.all(Array.from({ length: 60 }, () => executions.start("gated", {})));
  const ofB = started.filter(({ id }) => shared[partitionOf(id, defaultPartitions)] === "engine-b");
  expect(ofB.length).toBeGreaterThan(0);
  const jsm = await nc.jetstreamManager();
  await waitUntil("every start to be applied", async () =>
    (await jsm.streams.info(streams.events)).state.messages === 0 ? true : undefined,
  );

  // Who holds what at the kill (a stall of either engine could have moved partitions since).
  const atKill = await holders();
  const killedAt = Date.now();
  await b.kill("SIGKILL");
  await Promise.all(started.map(({ id }, n) => executions.signal(id, "go", { n }, `go-${n}`)));
  const ended = await Promise.all(started.map(({ id }) => executions.waitForEnd(id, 60_000)));
  console.log(`partitions.test: every execution ended ${Date.now() - killedAt} ms after the kill`);
  expect(ended.map((record) => record?.status)).toEqual(started.map(() => "succeeded"));
  expect(ended.map((record) => record?.output)).toEqual(started.map((_, n) => n));
  await waitUntil("engine-a to hold every partition", async () =>
    (await holders()).every((holder) => holder === "engine-a") ? true : undefined,
  );
  expect(a.exit).toBeUndefined();
  // Taken over from a dead engine, a partition's consumer is made anew, so that what the dead
  // engine was handed and never acknowledged comes at once rather than after the ack wait; the
  // partitions engine-a held all along keep theirs.
  for (const [partition, holder] of atKill.entries()) {
    const { created } = await jsm.consumers.info(streams.events, partitionConsumer(partition));
    const recreated = new Date(created).getTime() >= killedAt;
    expect({ partition, recreated }).toEqual({ partition, recreated: holder === "engine-b" });
  }
}, 120_000);
