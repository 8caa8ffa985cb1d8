/**
 * A consumer's leader changing on a real 3-node NATS cluster (`BATON_NATS_REPLICAS=3`), as
 * nats-server does on its own when a node is slow or restarts; here a stepdown asks for it. The
 * pull requests waiting on the old leader are gone with it, and whoever reads the consumer must
 * pull again soon: with nats.js's defaults (30 s pulls, two missed heartbeats to notice), an
 * execution waited about 40 s after a stepdown of its partition's consumer (measured with
 * bench/tools/cluster-stepdown.ts). Every pull of Baton now lasts `pullExpiresMs` (5 s), so the
 * executions below end well within 30 s. One engine and one worker (`baton engine`,
 * `baton worker functions/examples.ts`), real processes.
 */
import { join } from "node:path";
import { connect, type NatsConnection } from "nats";
import { afterAll, beforeAll, expect, it, vi } from "vitest";
import { defaultPartitions } from "../../engine/nats/partitions.ts";
import { engineConsumers } from "../../engine/nats/topology.ts";
import { Executions } from "../../engine/orchestrator/executions.ts";
import { partitionOf, streams, taskConsumer } from "../../sdk/protocol.ts";
import { useNatsCluster } from "../helpers/nats-cluster.ts";
import { killAllProcesses, spawnProcess, waitUntil } from "../helpers/processes.ts";

const root = join(import.meta.dirname, "../..");
const cluster = useNatsCluster();
let nc: NatsConnection;
let executions: Executions;

const workflow = `baton: v1
name: stepdown
steps:
  - name: first
    call: sleep
    with: { ms: 1500 }
  - name: nap
    wait: 1s
  - name: last
    call: add
    with: { a: 1, b: 2 }
`;

beforeAll(async () => {
  vi.stubEnv("BATON_NATS_REPLICAS", "3");
  const [n1, n2] = cluster().nodes;
  const env = (url: string) => ({
    ...process.env,
    NATS_URL: url,
    BATON_NATS_REPLICAS: "3",
    BATON_LOG_LEVEL: "warn",
  });
  const engine = spawnProcess(process.execPath, [join(root, "bin/baton.mjs"), "engine"], {
    name: "engine",
    env: env(n1!.url),
  });
  await engine.waitForLine(/engine ready/, { timeoutMs: 60_000 });
  const worker = spawnProcess(
    process.execPath,
    [join(root, "bin/baton.mjs"), "worker", join(root, "functions/examples.ts")],
    { name: "worker", env: { ...env(n2!.url), BATON_LOG_LEVEL: "info" } },
  );
  await worker.waitForLine(/serving/, { timeoutMs: 60_000 });
  nc = await connect({ servers: cluster().urls.split(","), maxReconnectAttempts: -1 });
  executions = await Executions.connect(nc);
  await executions.apply(workflow);
}, 180_000);

afterAll(async () => {
  await killAllProcesses();
  await nc?.close();
  vi.unstubAllEnvs();
});

/** Asks the leader of a consumer to step down; resolves once the cluster has elected another. */
async function stepDown(stream: string, consumer: string): Promise<void> {
  const jsm = await nc.jetstreamManager();
  const before = (await jsm.consumers.info(stream, consumer)).cluster?.leader;
  const answer = await nc.request(`$JS.API.CONSUMER.LEADER.STEPDOWN.${stream}.${consumer}`, "", {
    timeout: 10_000,
  });
  expect(answer.json<{ success?: boolean }>()).toMatchObject({ success: true });
  await waitUntil(`a new leader of ${stream} > ${consumer}`, async () => {
    const leader = (await jsm.consumers.info(stream, consumer).catch(() => undefined))?.cluster?.leader;
    return leader !== undefined && leader !== before ? true : undefined;
  });
}

/** The stream and consumer whose leader steps down, for an execution. */
type ConsumerOf = (id: string) => readonly [string, string];

it.each<[string, ConsumerOf]>([
  [
    "the execution's partition of events (the engine)",
    (id) => [streams.events, `engine_events_p${partitionOf(id, defaultPartitions)}`],
  ],
  ["the timers (the engine)", () => [streams.timers, engineConsumers.timers]],
  ["the tasks of `add` (the worker)", () => [streams.tasks, taskConsumer("pure", "add")]],
])(
  "an execution goes on soon after the leader of the consumer of %s steps down",
  async (_what, consumerOf) => {
    const { id } = await executions.start("stepdown", {});
    // While `first` sleeps: the reader of the consumer has a pull waiting on its leader.
    await waitUntil(`${id} to run its first step`, async () =>
      (await executions.history(id)).some((entry) => entry.type === "StepScheduled") ? true : undefined,
    );
    const [stream, consumer] = consumerOf(id);
    await stepDown(stream, consumer);
    const record = await executions.waitForEnd(id, 30_000);
    expect(record?.status, `${id} after the stepdown of ${stream} > ${consumer}`).toBe("succeeded");
    expect(record?.output).toBe(3);
  },
  60_000,
);
