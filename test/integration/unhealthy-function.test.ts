/**
 * A deployed function whose package a pool marked unhealthy (docs/functions.md) counts as served
 * by nobody, even while a worker's heartbeat still names it: its attempts that time out fail
 * `FunctionUnavailable`, not `Timeout`. Deploying a new version clears the mark. The mark is
 * written here as a pool writes it (PackageStore.markUnhealthy); the live worker is a heartbeat
 * that never takes its tasks, as in function-unavailable.test.ts.
 */
import { connect, type NatsConnection } from "nats";
import { afterAll, beforeAll, expect, it } from "vitest";
import { loadEngineConfig } from "../../engine/config.ts";
import { defaultScale, PackageStore } from "../../engine/functions/package-store.ts";
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
  const beat: HeartbeatEnvelope = {
    v: protocolVersion,
    worker: "sickly-worker",
    node: "test",
    functions: [
      { name: "sickly", lane: "pure" },
      { name: "outdated", lane: "pure" },
    ],
    concurrency: 1,
    effectConcurrency: 1,
    running: 0,
    startedAt: Date.now(),
  };
  heartbeats = setInterval(() => nc.publish(subjects.heartbeat("sickly-worker"), JSON.stringify(beat)), 500);
});

afterAll(async () => {
  clearInterval(heartbeats);
  await engine?.stop();
  await nc?.close();
});

const ended = async (id: string) =>
  waitUntil(
    `${id} to end`,
    async () => {
      const record = await executions.get(id);
      return record && record.status !== "running" && record.status !== "waiting" ? record : undefined;
    },
    { timeoutMs: 30_000 },
  );

/** Submits `call-<fn>`: one call of `fn` with a 1 s attempt timeout and no retry. */
const applyCaller = (fn: string) =>
  executions.apply(`baton: v1
name: call-${fn}
steps:
  - name: ask
    call: ${fn}
    timeout: 1s
    retry: { attempts: 1 }
`);

it("fails the attempts of an unhealthy package FunctionUnavailable, until a new version is deployed", async () => {
  const store = await PackageStore.open(nc.jetstream());
  await store.put("sickly", new TextEncoder().encode("// v1"), "node20", defaultScale);
  await store.markUnhealthy("sickly", 1, "3 workers of version 1 crashed");
  await applyCaller("sickly");
  const sick = await ended((await executions.start("call-sickly", {})).id);
  expect(sick.status).toBe("failed");
  expect(sick.error).toMatchObject({ code: "FunctionUnavailable" });

  // Version 2 clears the mark: the live worker counts again, and the slow attempt is a Timeout.
  await store.put("sickly", new TextEncoder().encode("// v2"), "node20", defaultScale);
  expect(await store.health("sickly")).toBeUndefined();
  const healed = await ended((await executions.start("call-sickly", {})).id);
  expect(healed.status).toBe("failed");
  expect(healed.error).toMatchObject({ code: "Timeout" });
});

it("a mark whose version a deploy outdated while it was written is taken back", async () => {
  const store = await PackageStore.open(nc.jetstream());
  await store.put("raced", new TextEncoder().encode("// v1"), "node20", defaultScale);
  // The race, forced: version 2 is deployed after the pool read the head (version 1) and before
  // it wrote the mark. Two processes cannot be made to meet at that instant on demand, so the
  // deploy runs in the store's hook between the two; the deploy itself is the real one.
  const marked = await store.markUnhealthy("raced", 1, "3 workers of version 1 crashed", async () => {
    await store.put("raced", new TextEncoder().encode("// v2"), "node20", defaultScale);
  });
  expect(marked).toBe(false);
  expect((await store.get("raced"))?.version).toBe(2);
  expect(await store.health("raced")).toBeUndefined();
  expect((await store.unhealthy()).map((health) => health.name)).not.toContain("raced");
});

it("a mark left on an older version does not make the latest one unavailable", async () => {
  const store = await PackageStore.open(nc.jetstream());
  await store.put("outdated", new TextEncoder().encode("// v1"), "node20", defaultScale);
  await store.put("outdated", new TextEncoder().encode("// v2"), "node20", defaultScale);
  // What a pool that died between writing its mark and reading the head again leaves behind.
  const mark = {
    name: "outdated",
    version: 1,
    healthy: false,
    reason: "crashed",
    since: new Date().toISOString(),
  };
  await store.kv.put("health.outdated", JSON.stringify(mark));
  await applyCaller("outdated");
  // The live worker (the heartbeat) serves version 2: the slow attempt is a Timeout.
  const outcome = await ended((await executions.start("call-outdated", {})).id);
  expect(outcome.status).toBe("failed");
  expect(outcome.error).toMatchObject({ code: "Timeout" });
});

it("a version that repeats older code names the bundle already stored, and every version loads", async () => {
  const store = await PackageStore.open(nc.jetstream());
  const v1 = new TextEncoder().encode("// one");
  await store.put("ordered", v1, "node20", defaultScale);
  await store.put("ordered", new TextEncoder().encode("// two"), "node20", defaultScale);
  // The same code again: a new version that names the bundle already stored.
  await store.put("ordered", v1, "node20", defaultScale);
  const versions = await store.versions("ordered");
  expect(versions.map((version) => version.version)).toEqual([1, 2, 3]);
  for (const { version } of versions) expect(await store.bundle("ordered", version)).toBeDefined();
  expect(new TextDecoder().decode((await store.bundle("ordered", 3))?.bundle)).toBe("// one");
});
