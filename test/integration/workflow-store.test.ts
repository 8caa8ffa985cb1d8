/** Workflow revisions in JetStream KV: numbering, identical documents, deletion. */
import { connect, type NatsConnection } from "nats";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ensureTopology } from "../../engine/nats/topology.ts";
import { WorkflowStore } from "../../engine/nats/workflow-store.ts";
import type { WorkflowDefinition } from "../../engine/workflow/definition.ts";
import { useNatsServer } from "../helpers/nats-server.ts";

const server = useNatsServer();
let nc: NatsConnection;
let store: WorkflowStore;

beforeAll(async () => {
  nc = await connect({ servers: server().url });
  store = new WorkflowStore((await ensureTopology(nc)).workflows);
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
