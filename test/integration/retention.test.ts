/** Retention: a finished execution, its history and its effect ledger are removed after the configured time. */
import { connect, type NatsConnection } from "nats";
import { afterAll, beforeAll, expect, it } from "vitest";
import { loadEngineConfig } from "../../engine/config.ts";
import { Executions } from "../../engine/orchestrator/executions.ts";
import { Orchestrator } from "../../engine/orchestrator/orchestrator.ts";
import { executionIndexBucket } from "../../engine/nats/execution-index.ts";
import {
  engineConsumers,
  retentionStream,
  retentionSubject,
  retentionWindow,
} from "../../engine/nats/topology.ts";
import { buckets } from "../../sdk/protocol.ts";
import { useNatsServer } from "../helpers/nats-server.ts";
import { testLogger } from "../helpers/test-logger.ts";
import { waitUntil } from "../helpers/processes.ts";
import { serveScripted, type ScriptedWorker } from "../helpers/scripted-worker.ts";

const server = useNatsServer();
let nc: NatsConnection;
let engine: Orchestrator;
let worker: ScriptedWorker;

beforeAll(async () => {
  nc = await connect({ servers: server().url });
  engine = await Orchestrator.create(
    nc,
    loadEngineConfig({ NATS_URL: server().url, BATON_RETENTION: "1s" }),
    testLogger,
  );
  await engine.start();
  worker = await serveScripted(nc, { store: () => ({ stored: true }) }, { lane: "effect" });
});

afterAll(async () => {
  worker?.stop();
  await engine?.stop();
  await nc?.close();
});

it("removes a finished execution with its history and ledger once retention has passed", async () => {
  const executions = await Executions.connect(nc);
  await executions.apply(`baton: v1
name: short-lived
steps:
  - { name: keep, call: store, effect: true }
`);
  const { id } = await executions.start("short-lived", {});
  const record = await executions.waitForEnd(id, 10_000);
  expect(record?.status).toBe("succeeded");
  // Right after the end, everything is still there.
  expect((await executions.history(id)).length).toBeGreaterThan(0);
  const ledger = await nc.jetstream().views.kv(buckets.effects);
  expect(await ledger.get(`${id}.keep.1`)).toBeTruthy();
  expect((await executions.list({ limit: 10 })).items.map((listed) => listed.id)).toEqual([id]);

  await waitUntil(
    "the execution to be removed",
    async () => ((await executions.get(id)) ? undefined : true),
    {
      timeoutMs: 10_000,
    },
  );
  expect(await executions.history(id)).toEqual([]);
  const entry = await ledger.get(`${id}.keep.1`);
  expect(entry === null || entry.operation !== "PUT").toBe(true);
  // Nothing stays behind, not even a delete marker per key: storage does not grow with every
  // execution that ever ran.
  const jsm = await nc.jetstreamManager();
  for (const [bucket, keys] of [
    [buckets.executions, [id, `${id}.>`]],
    [buckets.effects, [`${id}.>`]],
    [executionIndexBucket, [id]],
  ] as const) {
    for (const key of keys) {
      const info = await jsm.streams.info(`KV_${bucket}`, { subjects_filter: `$KV.${bucket}.${key}` });
      expect(Object.keys(info.state.subjects ?? {}), `${bucket} ${key}`).toEqual([]);
    }
  }
});

it("removes finished executions beyond the window the engine holds at once", async () => {
  const executions = await Executions.connect(nc);
  await executions.apply(`baton: v1
name: many
steps:
  - { name: done, return: 1 }
`);
  const count = retentionWindow + 100;
  const jsm = await nc.jetstreamManager();
  const before = (await jsm.streams.info(retentionStream)).state.last_seq;
  const ids: string[] = [];
  for (let i = 0; i < count; i += 50)
    ids.push(
      ...(
        await Promise.all(Array.from({ length: Math.min(50, count - i) }, () => executions.start("many", {})))
      ).map((started) => started.id),
    );
  // Every one ended (its removal published) before any absence counts: a record not yet
  // created is absent too.
  await waitUntil(
    "every execution to end",
    async () =>
      (await jsm.streams.info(retentionStream)).state.last_seq - before >= count ? true : undefined,
    { timeoutMs: 60_000, intervalMs: 250 },
  );
  await waitUntil(
    "every execution to be removed",
    async () => {
      for (const id of ids) if (await executions.get(id)) return undefined;
      return (await jsm.streams.info(retentionStream)).state.messages === 0 ? true : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 250 },
  );
}, 90_000);

it("lets go at once of a removal whose end is not the execution's last (it was retried since)", async () => {
  const executions = await Executions.connect(nc);
  await executions.apply(`baton: v1
name: held
steps:
  - { name: gate, receive: { signal: go } }
`);
  const { id } = await executions.start("held", {});
  await waitUntil("the execution to wait", async () =>
    (await executions.get(id))?.status === "waiting" ? true : undefined,
  );
  // What an earlier end of it would have left: a removal due now, naming that end. (Made by hand:
  // failing, retrying and waiting within the 1 s retention would race the removal.)
  const js = nc.jetstream();
  const earlierEnd = Date.now() - 5_000;
  await js.publish(
    retentionSubject(id),
    JSON.stringify({
      execution: id,
      timer: "execution.expire",
      token: `${id}.expire.${earlierEnd}`,
      due: earlierEnd + 1_000,
      event: { type: "execution.expire", endedAt: earlierEnd },
    }),
  );
  const jsm = await nc.jetstreamManager();
  // Taken and acknowledged, not parked to be looked at again: it holds no place in the window.
  await waitUntil("the removal to be let go", async () => {
    const info = await jsm.consumers.info(retentionStream, engineConsumers.retention);
    return info.num_pending === 0 && info.num_ack_pending === 0 ? true : undefined;
  });
  expect((await executions.get(id))?.status).toBe("waiting");
  await executions.signal(id, "go", {});
  expect((await executions.waitForEnd(id, 10_000))?.status).toBe("succeeded");
  await waitUntil("the execution to be removed after its own end", async () =>
    (await executions.get(id)) ? undefined : true,
  );
});
