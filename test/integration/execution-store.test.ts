/**
 * Execution records in JetStream KV: large records in chunks, and no chunk or delete marker left
 * behind once nothing can read it (a replaced write, a losing compare-and-set, a removed record).
 */
import { connect, type KV, type NatsConnection } from "nats";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ExecutionStore, RevisionConflict } from "../../engine/nats/execution-store.ts";
import { ensureTopology } from "../../engine/nats/topology.ts";
import { useNatsServer } from "../helpers/nats-server.ts";

const server = useNatsServer();
let nc: NatsConnection;
let kv: KV;

beforeAll(async () => {
  nc = await connect({ servers: server().url });
  kv = (await ensureTopology(nc)).executions;
});
afterAll(async () => nc?.close());

interface Big {
  id: string;
  fill: string;
}
/** A record of about `kib` KiB: over 512 it is written in chunks. */
const big = (id: string, kib: number, mark = "x"): Big => ({ id, fill: mark.repeat(kib * 1024) });

/** The chunk writes stored for an execution (the third token of `<id>.chunk.<write>.<n>`). */
async function chunkWrites(id: string): Promise<string[]> {
  const writes = new Set<string>();
  for await (const key of await kv.keys(`${id}.chunk.>`)) writes.add(key.split(".")[2]!);
  return [...writes];
}

/** Every subject of the bucket's stream that still holds a message for the execution, markers included. */
async function storedSubjects(id: string): Promise<string[]> {
  const jsm = await nc.jetstreamManager();
  const info = await jsm.streams.info("KV_baton_executions", {
    subjects_filter: `$KV.baton_executions.${id}.>`,
  });
  const head = await jsm.streams.info("KV_baton_executions", {
    subjects_filter: `$KV.baton_executions.${id}`,
  });
  return [...Object.keys(info.state.subjects ?? {}), ...Object.keys(head.state.subjects ?? {})];
}

it("erases the chunks of a write once a new write replaces it, leaving no markers", async () => {
  const store = new ExecutionStore<Big>(kv, 10);
  const stored = await store.create(big("replaced", 1200, "a"));
  const first = await chunkWrites("replaced");
  expect(first).toHaveLength(1);
  await store.update(big("replaced", 1300, "b"), stored.revision);
  const second = await chunkWrites("replaced");
  expect(second).toHaveLength(1);
  expect(second).not.toEqual(first);
  // A fresh store (no cache) finds the current write from the head.
  const other = new ExecutionStore<Big>(kv, 10);
  const loaded = await other.load("replaced");
  expect(loaded?.record.fill[0]).toBe("b");
  await other.update({ id: "replaced", fill: "small" }, loaded!.revision);
  expect(await chunkWrites("replaced")).toEqual([]);
  // Only the head's subject holds anything: the chunks left no delete markers.
  expect(await storedSubjects("replaced")).toEqual(["$KV.baton_executions.replaced"]);
  expect((await store.load("replaced", { fresh: true }))?.record.fill).toBe("small");
});

it("erases the chunks of a write whose compare-and-set lost", async () => {
  const one = new ExecutionStore<Big>(kv, 10);
  const two = new ExecutionStore<Big>(kv, 10);
  const created = await one.create(big("raced", 10));
  await two.load("raced");
  await one.update(big("raced", 900, "w"), created.revision);
  const winner = await chunkWrites("raced");
  await expect(two.update(big("raced", 900, "l"), created.revision)).rejects.toBeInstanceOf(RevisionConflict);
  expect(await chunkWrites("raced")).toEqual(winner);
  // A second create of an existing execution leaves nothing either.
  await expect(two.create(big("raced", 900, "c"))).rejects.toBeInstanceOf(RevisionConflict);
  expect(await chunkWrites("raced")).toEqual(winner);
  expect((await two.load("raced", { fresh: true }))?.record.fill[0]).toBe("w");
});

it("removes a record, its chunks and their markers", async () => {
  const store = new ExecutionStore<Big>(kv, 10);
  await store.create(big("removed", 700));
  expect(await storedSubjects("removed")).not.toEqual([]);
  await store.remove("removed");
  expect(await store.load("removed", { fresh: true })).toBeUndefined();
  expect(await storedSubjects("removed")).toEqual([]);
});

it("reads a record whose chunks a newer write erased while it read, from the newer head", async () => {
  const writer = new ExecutionStore<Big>(kv, 10);
  let stored = await writer.create(big("moving", 1100, "0"));
  const reader = new ExecutionStore<Big>(kv, 10);
  // Each read races a write that erases the chunks the read may have found in the head.
  for (let round = 1; round <= 20; round++) {
    const mark = String(round % 10);
    const [read] = await Promise.all([
      reader.load("moving", { fresh: true }),
      writer.update(big("moving", 1100, mark), stored.revision).then((next) => (stored = next)),
    ]);
    expect(read?.record.fill.length).toBe(1100 * 1024);
  }
  expect(await chunkWrites("moving")).toHaveLength(1);
});
