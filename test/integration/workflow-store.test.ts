/** Workflow revisions in JetStream KV: numbering, identical documents, deletion. */
import { connect, type KV, type NatsConnection } from "nats";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ensureTopology } from "../../engine/nats/topology.ts";
import { WorkflowStore } from "../../engine/nats/workflow-store.ts";
import type { WorkflowDefinition } from "../../engine/workflow/definition.ts";
import { useNatsServer } from "../helpers/nats-server.ts";

const server = useNatsServer();
let nc: NatsConnection;
let store: WorkflowStore;
let kv: KV;

beforeAll(async () => {
  nc = await connect({ servers: server().url });
  kv = (await ensureTopology(nc)).workflows;
  store = new WorkflowStore(kv);
});
afterAll(async () => nc?.close());

const definition = (description: string): WorkflowDefinition => ({
  baton: "v1",
  name: "kept",
  description,
  steps: [{ name: "a", return: 1 }],
});

it("numbers revisions, keeps an identical document's, and never reuses a number after a delete", async () => {
  expect((await store.put(definition("one"), "one")).outcome).toBe("created");
  expect((await store.put(definition("one"), "one")).outcome).toBe("unchanged");
  const second = await store.put(definition("two"), "two");
  expect([second.outcome, second.workflow.revision]).toEqual(["updated", 2]);

  await store.remove("kept");
  expect(await store.get("kept")).toBeUndefined();
  // Executions running on an old revision can still load it.
  expect((await store.get("kept", 2))?.definition.description).toBe("two");

  const again = await store.put(definition("three"), "three");
  expect([again.outcome, again.workflow.revision]).toEqual(["created", 3]);
  expect((await store.get("kept", 1))?.definition.description).toBe("one");
  expect((await store.get("kept"))?.revision).toBe(3);
});

it("gives every one of many concurrent submissions under one name a revision holding its own document", async () => {
  // Two engines (two connections) submitting at once: each caller's revision must hold the
  // document that caller sent, and no two callers may share a number.
  const other = await connect({ servers: server().url });
  try {
    const stores = [store, new WorkflowStore((await ensureTopology(other)).workflows)];
    const race = (description: string, index: number) =>
      stores[index % 2]!.put({ ...definition(description), name: "raced" }, description);
    const descriptions = Array.from({ length: 24 }, (_, index) => `document ${index}`);
    const results = await Promise.all(descriptions.map(race));
    for (const [index, { workflow, outcome }] of results.entries()) {
      expect(outcome).not.toBe("unchanged");
      expect(workflow.definition.description).toBe(descriptions[index]);
      expect((await store.get("raced", workflow.revision))?.definition.description).toBe(descriptions[index]);
    }
    const numbers = results.map(({ workflow }) => workflow.revision);
    expect(new Set(numbers).size).toBe(numbers.length);
    // The head is the one with the highest number: a later head never names an older revision.
    expect((await store.get("raced"))?.revision).toBe(Math.max(...numbers));
  } finally {
    await other.close();
  }
});

it("writes a delete's tombstone over the head it read, so numbering never goes back", async () => {
  const named = (description: string) => ({ ...definition(description), name: "removed" });
  await store.put(named("base"), "base");
  // The interleaving to reproduce: a delete reads the head, a submission moves it, then the
  // delete writes. Over one real KV the window is too narrow to hit reliably, so the deleting
  // store's reads wait on a gate the test opens (the KV itself is the real one).
  let readDone!: () => void;
  let release!: () => void;
  const read = new Promise<void>((resolve) => (readDone = resolve));
  const gate = new Promise<void>((resolve) => (release = resolve));
  const gated = new Proxy(kv, {
    get: (target, property) =>
      property === "get"
        ? async (key: string) => {
            const entry = await target.get(key);
            readDone();
            await gate;
            return entry;
          }
        : (Reflect.get(target, property, target) as unknown),
  });
  const removing = new WorkflowStore(gated).remove("removed");
  await read;
  const moved = await store.put(named("moved"), "moved");
  release();
  await removing;
  expect(await store.get("removed")).toBeUndefined();
  const tombstone = (await kv.get("removed"))!.json<{ deleted: boolean; revision: number }>();
  expect(tombstone).toEqual({ name: "removed", deleted: true, revision: moved.workflow.revision });
  const after = await store.put(named("after"), "after");
  expect(after.workflow.revision).toBe(moved.workflow.revision + 1);
  expect((await store.get("removed", moved.workflow.revision))?.definition.description).toBe("moved");
});
