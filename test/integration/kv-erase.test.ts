/** Keys removed without leaving delete markers behind (engine/nats/kv-erase.ts), and where Baton uses it. */
import { connect, type NatsConnection } from "nats";
import { afterAll, beforeAll, expect, it } from "vitest";
import { eraseKeys } from "../../engine/nats/kv-erase.ts";
import { ensureTopology, type Topology } from "../../engine/nats/topology.ts";
import { ReceiveSubscriptions } from "../../engine/orchestrator/receive-subscriptions.ts";
import { useNatsServer } from "../helpers/nats-server.ts";
import { waitUntil } from "../helpers/processes.ts";

const server = useNatsServer();
let nc: NatsConnection;
let topology: Topology;

beforeAll(async () => {
  nc = await connect({ servers: server().url });
  topology = await ensureTopology(nc);
});
afterAll(async () => nc?.close());

/** The subjects of a bucket's stream that hold any message (a value or a marker) under `key`. */
async function subjectsHeld(bucket: string, key: string): Promise<string[]> {
  const info = await topology.jsm.streams.info(`KV_${bucket}`, { subjects_filter: `$KV.${bucket}.${key}` });
  return Object.keys(info.state.subjects ?? {}).sort();
}

it("erases a key pattern's values and leaves the other keys", async () => {
  const kv = topology.effects;
  for (const key of ["gone.a.1", "gone.b.2", "kept.a.1"]) await kv.put(key, "{}");
  await kv.put("gone.a.1", "{}");
  await eraseKeys(kv, "gone.>");
  expect(await subjectsHeld("baton_effects", ">")).toEqual(["$KV.baton_effects.kept.a.1"]);
  expect(await kv.get("gone.a.1")).toBeNull();
  // An erased key can be created again.
  await kv.create("gone.a.1", "{}");
});

it("purges the delete markers of finished receives once they are old enough", async () => {
  // Short ages for the test; the engine keeps markers an hour (receiveMarkers).
  const receives = new ReceiveSubscriptions(nc, topology.js, topology.receives, topology.partitions, {
    ageMs: 200,
    everyMs: 100,
  });
  await receives.start();
  try {
    await receives.add("swept", "wait", "orders.swept");
    await receives.remove("swept", "wait");
    // The marker is there at first, for every replica's watch to see.
    expect(await subjectsHeld("baton_receives", "swept.wait")).toEqual(["$KV.baton_receives.swept.wait"]);
    await waitUntil("the marker to be purged", async () =>
      (await subjectsHeld("baton_receives", "swept.wait")).length === 0 ? true : undefined,
    );
  } finally {
    receives.stop();
  }
});
