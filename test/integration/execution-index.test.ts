/**
 * Listing executions reads the index of top-level executions (engine/nats/execution-index.ts),
 * not every key of `baton_executions`, which also holds map items, children and chunks.
 */
import { connect, type NatsConnection } from "nats";
import { afterAll, beforeAll, expect, it } from "vitest";
import { loadEngineConfig } from "../../engine/config.ts";
import { executionIndexBucket } from "../../engine/nats/execution-index.ts";
import { ensureTopology } from "../../engine/nats/topology.ts";
import { Executions } from "../../engine/orchestrator/executions.ts";
import { newExecutionId } from "../../engine/orchestrator/ids.ts";
import { Orchestrator } from "../../engine/orchestrator/orchestrator.ts";
import { useNatsServer } from "../helpers/nats-server.ts";
import { serveScripted, type ScriptedWorker } from "../helpers/scripted-worker.ts";
import { testLogger } from "../helpers/test-logger.ts";

const server = useNatsServer();
let nc: NatsConnection;
let engine: Orchestrator;
let worker: ScriptedWorker;
let executions: Executions;

beforeAll(async () => {
  nc = await connect({ servers: server().url });
  engine = await Orchestrator.create(nc, loadEngineConfig({ NATS_URL: server().url }), testLogger);
  await engine.start();
  executions = await Executions.connect(nc);
  worker = await serveScripted(nc, { twice: (input) => (input as number) * 2 });
});

afterAll(async () => {
  worker?.stop();
  await engine?.stop();
  await nc?.close();
});

async function keysOf(bucket: string): Promise<string[]> {
  const kv = await nc.jetstream().views.kv(bucket);
  const keys: string[] = [];
  for await (const key of await kv.keys()) keys.push(key);
  return keys.sort();
}

it("indexes top-level executions only, and lists from the index", async () => {
  await executions.apply(`baton: v1
name: fan
steps:
  - name: each
    map: { items: "\${ [1, 2, 3] }", steps: [{ name: double, call: twice }] }
`);
  const started = [];
  for (let n = 0; n < 3; n++) started.push((await executions.start("fan", {})).id);
  for (const id of started) expect((await executions.waitForEnd(id, 20_000))?.status).toBe("succeeded");

  // The records bucket holds the items too; the index only the executions a user started.
  const records = await keysOf("baton_executions");
  expect(records.filter((key) => key.includes("_")).length).toBe(9);
  expect((await keysOf(executionIndexBucket)).filter((key) => !key.startsWith("_"))).toEqual(started.sort());

  // A record the index does not name is not listed: listing reads the index, not the records' keys.
  const unindexed = newExecutionId();
  const { items: before } = await executions.list({ limit: 50 });
  const [template] = before;
  await (
    await nc.jetstream().views.kv("baton_executions")
  ).put(unindexed, JSON.stringify({ ...template, id: unindexed }));
  const { items } = await executions.list({ limit: 50 });
  expect(items.map((record) => record.id)).toEqual([...started].sort().reverse());
});

it("fills the index once from the records an installation had before it", async () => {
  const topology = await ensureTopology(nc);
  const before = (await keysOf(executionIndexBucket)).filter((key) => !key.startsWith("_"));
  // As if the index had never existed.
  await topology.jsm.streams.delete(`KV_${executionIndexBucket}`);
  const reopened = await ensureTopology(nc);
  const filled = await reopened.executionIndex.ids();
  // Every top-level record, including the one written without an entry above; no items.
  expect(filled.length).toBe(before.length + 1);
  expect(filled.every((id) => !id.includes("_"))).toBe(true);
  expect(await reopened.executionIndex.kv.get("_filled")).toBeTruthy();
});
