/**
 * Baton on a real 3-node NATS cluster with `BATON_NATS_REPLICAS=3`: two engine processes
 * connected to different nodes and two workers (`baton worker functions/examples.ts`). While 200
 * executions run, each with an effect step, the node leading a stream is SIGKILLed and, once it
 * is back, a second one: every execution finishes with the right output, every effect ran
 * exactly once (effect-counter writes one line per run), nothing is left unacknowledged. Done for
 * the leader of BATON_EVENTS and for the leader of the execution records' bucket.
 *
 * On nats-server 2.10+ only: scripts/test.sh fetches one (scripts/ensure-nats-server-cluster.sh,
 * NATS_SERVER_CLUSTER_BIN) where the default server is Debian 12's 2.9.10. On 2.9.10 the two
 * killing tests are skipped (BATON_TEST_CLUSTER_KILLS=1 runs them anyway): after a leader change
 * its R3 work queues lose messages JetStream had acknowledged. A task the engine published that no
 * worker ever claimed (its ledger entry says dispatched, BATON_TASKS no longer holds it, the
 * consumer has delivered past it), which the step's attempt timeout dispatches again; execution
 * starts the engine had nacked on BATON_EVENTS after its record write timed out, which nothing
 * sends again, so such an execution stalls; messages whose body did not match their subject. None
 * of this was seen on 2.10.27 (docs/operations.md says a cluster needs 2.10). The work queues may
 * keep messages of attempts long answered, below their consumer's acknowledged floor: tolerated
 * below, as long as nothing waits on them. On a failure the test prints the tasks and events
 * streams and their consumers (dumpTasks).
 */
import { eventsHeld } from "../helpers/event-consumers.ts";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type NatsConnection } from "nats";
import { afterAll, beforeAll, expect, it, vi } from "vitest";
import { subjectCovers } from "../../engine/nats/emit-stream.ts";
import { isEnded } from "../../engine/orchestrator/execution-record.ts";
import { Executions } from "../../engine/orchestrator/executions.ts";
import { buckets, streams } from "../../sdk/protocol.ts";
import { openBucket } from "../../sdk/replication.ts";
import { useNatsCluster, type NatsClusterNode } from "../helpers/nats-cluster.ts";
import { isNatsServer210, resolveClusterNatsServerBinary } from "../helpers/nats-server.ts";
import { killAllProcesses, spawnProcess, waitUntil, type TestProcess } from "../helpers/processes.ts";

const root = join(import.meta.dirname, "../..");
const cluster = useNatsCluster();
const effectDir = mkdtempSync(join(tmpdir(), "baton-cluster-effects-"));
const executionsPerRound = 200;
let nc: NatsConnection;
let executions: Executions;
const processes: TestProcess[] = [];

const workflow = `baton: v1
name: replicated
input: { type: object, required: [n], properties: { n: { type: integer } } }
steps:
  - name: charge
    call: effect-counter
    effect: true
    with: { n: "\${ $input.n }" }
  - name: last
    call: add
    with: { a: "\${ $input.n }", b: 1000 }
`;

/** Every process gets one node's URL: it learns the others from the cluster and fails over to them. */
function env(node: NatsClusterNode, name: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    NATS_URL: node.url,
    BATON_NATS_REPLICAS: "3",
    BATON_EFFECT_DIR: effectDir,
    BATON_LOG_LEVEL: "warn",
    BATON_ENGINE_ID: name,
    BATON_WORKER_NAME: name,
  };
}

async function startEngine(name: string, node: NatsClusterNode): Promise<TestProcess> {
  const engine = spawnProcess(process.execPath, [join(root, "bin/baton.mjs"), "engine"], {
    name,
    env: env(node, name),
  });
  processes.push(engine);
  await engine.waitForLine(/engine ready/, { timeoutMs: 60_000 });
  return engine;
}

async function startWorker(name: string, node: NatsClusterNode): Promise<TestProcess> {
  const worker = spawnProcess(
    process.execPath,
    [join(root, "bin/baton.mjs"), "worker", join(root, "functions/examples.ts")],
    { name, env: { ...env(node, name), BATON_LOG_LEVEL: "info" } },
  );
  processes.push(worker);
  await worker.waitForLine(/serving/, { timeoutMs: 60_000 });
  return worker;
}

beforeAll(async () => {
  // The test's own connection creates nothing; with the variable set it would not scale anything down either.
  vi.stubEnv("BATON_NATS_REPLICAS", "3");
  const [n1, n2, n3] = cluster().nodes;
  await startEngine("engine-a", n1!);
  await startEngine("engine-b", n2!);
  await startWorker("worker-a", n3!);
  await startWorker("worker-b", n1!);
  nc = await connect({
    servers: cluster().urls.split(","),
    maxReconnectAttempts: -1,
    reconnectTimeWait: 100,
  });
  executions = await Executions.connect(nc);
  await executions.apply(workflow);
}, 180_000);

afterAll(async () => {
  await killAllProcesses();
  await nc?.close();
  vi.unstubAllEnvs();
  rmSync(effectDir, { recursive: true, force: true });
});

const effectFile = (id: string) => encodeURIComponent(`${id}/charge/1`);

async function startMany(count: number, offset: number): Promise<Map<string, number>> {
  const started = new Map<string, number>();
  const ids = await Promise.all(
    Array.from({ length: count }, (_, index) => executions.start("replicated", { n: offset + index })),
  );
  ids.forEach(({ id }, index) => started.set(id, offset + index));
  return started;
}

async function waitForEffects(started: Map<string, number>, atLeast: number): Promise<void> {
  await waitUntil(
    `${atLeast} effects of this round to have run`,
    () => {
      const files = new Set(readdirSync(effectDir));
      return [...started.keys()].filter((id) => files.has(effectFile(id))).length >= atLeast
        ? true
        : undefined;
    },
    { timeoutMs: 120_000, intervalMs: 50 },
  );
}

/** SIGKILLs the node leading `stream` and restarts it; returns it once it is back and current. */
async function killLeaderOf(stream: string): Promise<NatsClusterNode> {
  const leader = await cluster().leaderOf(nc, stream);
  await leader.kill();
  // Another node takes the lead: the cluster carries on without the killed one.
  await waitUntil(
    `a new leader for ${stream}`,
    async () => {
      const now = await cluster().leaderOf(nc, stream);
      return now.name !== leader.name ? now : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 100 },
  );
  await leader.restart();
  await waitForCurrent(stream);
  return leader;
}

/**
 * Reads records and the workflow over and over, as the API does for its clients, until stopped;
 * returns the errors. A node dying is ordinary weather: a read waits out the election
 * (nats-retry.ts) instead of failing the client's request.
 */
function keepReading(ids: string[]): { stop: () => Promise<string[]> } {
  const errors: string[] = [];
  let reading = true;
  const loop = (async () => {
    for (let i = 0; reading; i++) {
      const startedAt = Date.now();
      try {
        await executions.get(ids[i % ids.length]!);
        await executions.workflows.get("replicated");
      } catch (error) {
        errors.push(`${String(error)} after ${Date.now() - startedAt} ms`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20)); // a pace, not a wait for anything
    }
  })();
  return {
    stop: async () => {
      reading = false;
      await loop;
      return errors;
    },
  };
}

/** Every replica of `stream` is back and current. */
async function waitForCurrent(stream: string): Promise<void> {
  const jsm = await nc.jetstreamManager();
  await waitUntil(
    `${stream} to have a leader and 2 current replicas`,
    async () => {
      const { cluster: state } = await jsm.streams.info(stream);
      const replicas = state?.replicas ?? [];
      return state?.leader && replicas.length === 2 && replicas.every((peer) => peer.current)
        ? true
        : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 100 },
  );
}

/** What the tasks and events streams and their consumers hold, with the executions left waiting. */
async function dumpTasks(pending: Set<string>): Promise<void> {
  const jsm = await nc.jetstreamManager();
  const out: string[] = [];
  for (const stream of [streams.tasks, streams.events]) {
    const info = await jsm.streams.info(stream);
    out.push(`STREAM ${stream} state=${JSON.stringify(info.state)} cluster=${JSON.stringify(info.cluster)}`);
    const consumers = [];
    for await (const c of jsm.consumers.list(stream)) consumers.push(c);
    for (const c of consumers)
      out.push(
        `CONSUMER ${stream}/${c.name} delivered=${JSON.stringify(c.delivered)} ack_floor=${JSON.stringify(c.ack_floor)} pending=${c.num_pending} ack_pending=${c.num_ack_pending} redelivered=${c.num_redelivered} waiting=${c.num_waiting} cluster=${JSON.stringify(c.cluster)}`,
      );
    if (stream === streams.tasks && info.state.messages < 2000)
      for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
        const m = await jsm.streams.getMessage(stream, { seq }).catch(() => undefined);
        if (!m) continue;
        const body = m.json<{ execution?: string; step?: string; attempt?: number }>();
        out.push(
          `  MSG #${seq} ${m.subject} ${body.execution}/${body.step}/${body.attempt} pending=${pending.has(body.execution ?? "")} id=${m.header?.get("Nats-Msg-Id")}`,
        );
      }
  }
  out.push(`PENDING executions: ${pending.size}: ${[...pending].slice(0, 10).join(",")}`);
  const effects = await openBucket(nc.jetstream(), buckets.effects, { history: 1 });
  const files = new Set(readdirSync(effectDir));
  for (const id of [...pending].slice(0, 4)) {
    const entry = await effects.get(`${id}.charge.1`).catch((e: unknown) => String(e));
    const ledger =
      entry && typeof entry === "object"
        ? entry.value.length
          ? new TextDecoder().decode(entry.value)
          : entry.operation
        : entry;
    out.push(`EXEC ${id} effectFile=${files.has(effectFile(id))} ledger=${ledger}`);
    const ledgerSeq = /"taskSeq":(\d+)/.exec(String(ledger))?.[1];
    if (ledgerSeq) {
      const m = await jsm.streams
        .getMessage(streams.tasks, { seq: Number(ledgerSeq) })
        .catch((e: unknown) => String(e));
      out.push(`  task #${ledgerSeq}: ${typeof m === "string" ? m : m.subject}`);
    }
    for (const child of processes)
      for (const line of child
        .output()
        .split("\n")
        .filter((l) => l.includes(id))
        .slice(0, 10))
        out.push(`  ${child.name}: ${line.slice(0, 400)}`);
  }
  for (const child of processes)
    for (const line of child
      .output()
      .split("\n")
      .filter((l) => /"level":"(warn|error)"/.test(l))
      .slice(0, 15))
      out.push(`  WARN ${child.name}: ${line.slice(0, 300)}`);
  console.error(`tasks and events when executions did not end:\n${out.join("\n")}`);
}

async function waitForAll(ids: Iterable<string>) {
  const pending = new Set(ids);
  const records = new Map<string, NonNullable<Awaited<ReturnType<Executions["get"]>>>>();
  await waitUntil(
    `${pending.size} executions to end`,
    async () => {
      for (const id of [...pending]) {
        const record = await executions.get(id).catch(() => undefined);
        if (record && isEnded(record.status)) {
          records.set(id, record);
          pending.delete(id);
        }
      }
      return pending.size === 0 ? true : undefined;
    },
    { timeoutMs: 180_000, intervalMs: 200 },
  ).catch(async (error: unknown) => {
    await dumpTasks(pending).catch((reason: unknown) => console.error("could not dump the tasks", reason));
    const some = await Promise.all([...pending].slice(0, 5).map((id) => executions.get(id).catch(String)));
    throw new Error(`${(error as Error).message}; some left: ${JSON.stringify(some).slice(0, 3000)}`);
  });
  return records;
}

async function expectAllRight(started: Map<string, number>): Promise<void> {
  const records = await waitForAll(started.keys());
  for (const [id, n] of started) {
    const record = records.get(id)!;
    expect(record.status, `${id}: ${JSON.stringify(record.error)}`).toBe("succeeded");
    expect(record.output).toBe(n + 1000);
    const runs = readFileSync(join(effectDir, effectFile(id)), "utf8")
      .trim()
      .split("\n");
    if (runs.length !== 1) {
      const told = processes.map(
        (child) =>
          `${child.name}: ${child
            .output()
            .split("\n")
            .filter((line) => line.includes(id) || /taking over/.test(line))
            .join("\n")}`,
      );
      expect(runs, `effect of ${id}: ${runs.join(" | ")}\n${told.join("\n")}`).toHaveLength(1);
    }
  }
  // Nothing unacknowledged: no consumer has a message to deliver or one delivered and not acknowledged,
  // and whatever a work queue still holds lies below the acknowledged floor of the consumer that
  // took it. (nats-server 2.9.10 may keep a few acknowledged messages in an R3 work queue after
  // its leader changed; they are never delivered again. docs/operations.md, "Running on a cluster".)
  const jsm = await nc.jetstreamManager();
  let left: string[] = [];
  const stranded = new Set<string>();
  await waitUntil(
    "every consumer to have acknowledged everything",
    async () => {
      left = [];
      for (const stream of [streams.events, streams.tasks]) {
        const consumers = [];
        for await (const consumer of jsm.consumers.list(stream)) consumers.push(consumer);
        for (const consumer of consumers)
          if (consumer.num_ack_pending !== 0 || consumer.num_pending !== 0)
            left.push(
              `${stream}/${consumer.name}: ${consumer.num_pending} pending, ${consumer.num_ack_pending} unacknowledged`,
            );
        const { state } = await jsm.streams.info(stream);
        if (state.messages === 0) continue;
        for (let seq = state.first_seq; seq <= state.last_seq; seq++) {
          const message = await jsm.streams.getMessage(stream, { seq }).catch(() => undefined);
          if (message === undefined) continue; // removed
          const taker = consumers.find(
            (consumer) =>
              !consumer.config.filter_subject ||
              subjectCovers(consumer.config.filter_subject, message.subject),
          );
          if (taker !== undefined && taker.ack_floor.stream_seq >= seq) continue; // acknowledged
          // nats-server 2.9.10 may keep, after a leader change, messages its R3 consumer no longer
          // counts as pending or unacknowledged: tolerated only when nothing waits on them (the
          // execution they belong to has ended: its attempt was answered by a later delivery).
          // A task names its execution in its body; an event only in its subject
          // (`baton.events.p.<partition>.<execution>[.result]`).
          const execution =
            message.json<{ execution?: string }>().execution ??
            /^baton\.events\.p\.\d+\.([^.]+)/.exec(message.subject)?.[1] ??
            "";
          const record = records.get(execution) ?? (await executions.get(execution).catch(() => undefined));
          if (record && isEnded(record.status)) {
            stranded.add(`${stream} #${seq}`);
            continue;
          }
          left.push(
            `${stream} #${seq} (${message.subject}): not acknowledged by ${taker?.name ?? "any consumer"}`,
          );
        }
      }
      return left.length === 0 ? true : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 200 },
  ).catch((error: unknown) => {
    throw new Error(`${(error as Error).message}: ${left.join("; ")}`);
  });
  // An engine that took a partition over from one whose beats stood still during an election
  // recreates the partition's consumer (for immediate redelivery): between its removal and its
  // creation it is not found. One that stays missing fails here.
  await waitUntil(
    "the engines' event consumers to hold nothing unacknowledged",
    async () => ((await eventsHeld(jsm).catch(() => undefined))?.unacknowledged === 0 ? true : undefined),
    { timeoutMs: 30_000, intervalMs: 200 },
  );
  if (stranded.size > 0)
    console.info(
      `${stranded.size} message(s) left in work queues by nats-server, none that anything waits on`,
    );
}

function expectNoErrorsLogged(): void {
  // Leader elections are weather: no process logs an error about them.
  for (const child of processes) {
    const errors = child
      .output()
      .split("\n")
      .filter((line) => line.includes('"level":"error"'));
    expect(errors, `${child.name} logged errors`).toEqual([]);
  }
}

// On 2.10+: see the file's comment.
const killing =
  isNatsServer210(resolveClusterNatsServerBinary()) || process.env.BATON_TEST_CLUSTER_KILLS === "1";
if (!killing)
  console.warn(
    "cluster.test.ts: the node-killing tests need nats-server 2.10+ (bash scripts/ensure-nats-server-cluster.sh); skipped",
  );

it.runIf(killing)(
  "loses nothing and runs no effect twice when the leader of BATON_EVENTS dies, then a second node",
  async () => {
    const started = await startMany(executionsPerRound, 0);
    await waitForEffects(started, 20);
    const reader = keepReading([...started.keys()]);
    const first = await killLeaderOf(streams.events);
    // A second node: the one leading now, which is not the one that just came back.
    const second = await killLeaderOf(streams.events);
    expect(await reader.stop(), "reads that failed while nodes died").toEqual([]);
    expect(second.name).not.toBe(first.name);
    await expectAllRight(started);
    expectNoErrorsLogged();
  },
  240_000,
);

it.runIf(killing)(
  "loses nothing and runs no effect twice when the leader of the execution records dies, then a second node",
  async () => {
    const records = `KV_${buckets.executions}`;
    const started = await startMany(executionsPerRound, 10_000);
    await waitForEffects(started, 20);
    const reader = keepReading([...started.keys()]);
    const first = await killLeaderOf(records);
    const second = await killLeaderOf(records);
    expect(await reader.stop(), "reads that failed while nodes died").toEqual([]);
    expect(second.name).not.toBe(first.name);
    await expectAllRight(started);
    expectNoErrorsLogged();
  },
  240_000,
);

it("keeps every Baton stream and bucket at 3 replicas, all current", async () => {
  const jsm = await nc.jetstreamManager();
  const names: string[] = [];
  for await (const info of jsm.streams.list()) names.push(info.config.name);
  expect(names).toEqual(expect.arrayContaining([streams.events, streams.tasks, `KV_${buckets.executions}`]));
  for (const name of names) {
    await waitForCurrent(name);
    const info = await jsm.streams.info(name);
    expect(info.config.num_replicas, name).toBe(3);
    expect(
      info.cluster?.replicas?.map((peer) => peer.current),
      name,
    ).toEqual([true, true]);
    if (name.startsWith("KV_")) expect(info.config.allow_direct, name).toBe(false);
    for await (const consumer of jsm.consumers.list(name))
      if (consumer.config.durable_name)
        expect(consumer.config.num_replicas, `${name}/${consumer.name}`).toBe(3);
  }
});
