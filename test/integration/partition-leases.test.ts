/**
 * Partition leases (engine/orchestrator/partition-leases.ts) against a real nats-server's KV, with
 * hooks that stand in for the engine's reads: a real engine cannot be made to fail opening one
 * partition on demand (the fault here is injected, and the test says so), nor can one be paused
 * mid-tick from outside.
 */
import { connect, type KV, type NatsConnection } from "nats";
import { afterAll, beforeAll, expect, it } from "vitest";
import {
  leaseKey,
  PartitionLeases,
  type PartitionHooks,
} from "../../engine/orchestrator/partition-leases.ts";
import { useNatsServer } from "../helpers/nats-server.ts";
import { waitUntil } from "../helpers/processes.ts";
import { testLogger } from "../helpers/test-logger.ts";

const server = useNatsServer();
let nc: NatsConnection;
let bucket = 0;

beforeAll(async () => {
  nc = await connect({ servers: server().url });
});

afterAll(async () => {
  await nc?.close();
});

/** A bucket of its own per test: leases of one test never meet another's. */
const freshKv = async (): Promise<KV> => nc.jetstream().views.kv(`leases_test_${++bucket}`);

const timing = { leaseMs: 600, tickMs: 100 };

it("lets go of a partition it could not start reading, and takes it up again", async () => {
  const kv = await freshKv();
  const calls: string[] = [];
  let failOnce = true;
  const hooks: PartitionHooks = {
    acquire: (partition) => {
      calls.push(`acquire ${partition}`);
      // The injected fault: the first open of partition 2 fails, as a NATS error would.
      if (partition === 2 && failOnce) {
        failOnce = false;
        return Promise.reject(new Error("503 (injected)"));
      }
      return Promise.resolve();
    },
    release: (partition) => {
      calls.push(`release ${partition}`);
      return Promise.resolve();
    },
  };
  const leases = new PartitionLeases(kv, "engine-x", 4, hooks, testLogger, timing);
  await leases.start();
  try {
    // Not held after the failure: neither counted as read nor left stalled.
    expect(leases.holding).toEqual([0, 1, 3]);
    await waitUntil("partition 2 to be taken up again", () =>
      leases.holding.length === 4 ? true : undefined,
    );
    expect(calls.filter((call) => call.endsWith(" 2"))).toEqual(["acquire 2", "release 2", "acquire 2"]);
  } finally {
    await leases.stop();
  }
  // Handed back on stop: nobody holds anything.
  for (let partition = 0; partition < 4; partition++) {
    const entry = await kv.get(leaseKey(partition));
    expect(entry === null || entry.operation !== "PUT").toBe(true);
  }
});

it("gives up at once a lease another engine took while this one was cut off", async () => {
  const kv = await freshKv();
  const events: string[] = [];
  const hooks: PartitionHooks = {
    acquire: (partition, takenOver) => {
      events.push(`acquire ${partition}${takenOver ? " taken over" : ""}`);
      return Promise.resolve();
    },
    release: (partition, lost) => {
      events.push(`release ${partition}${lost ? " lost" : ""}`);
      return Promise.resolve();
    },
  };
  const leases = new PartitionLeases(kv, "engine-y", 2, hooks, testLogger, timing);
  await leases.start();
  try {
    expect(leases.holding).toEqual([0, 1]);
    // Another engine wrote partition 1's lease (it had seen this one gone). This one stops
    // reading it at once; and since that engine is not beating, takes it over again.
    await kv.put(leaseKey(1), JSON.stringify({ owner: "engine-z/0000" }));
    await waitUntil("the lease to be given up and taken over again", () =>
      events.includes("acquire 1 taken over") ? true : undefined,
    );
    expect(events.filter((event) => event.includes(" 1"))).toEqual([
      "acquire 1",
      "release 1 lost",
      "acquire 1 taken over",
    ]);
  } finally {
    await leases.stop();
  }
});

it("removes a handed-back lease whose removal failed, so the partition does not stay held by nobody", async () => {
  const kv = await freshKv();
  const idle: PartitionHooks = { acquire: () => Promise.resolve(), release: () => Promise.resolve() };
  // The injected fault: engine A's first removal of a lease fails, as it would with NATS away.
  let failDelete = true;
  const flaky = new Proxy(kv, {
    get(target, property, receiver) {
      if (property === "delete" && failDelete) {
        failDelete = false;
        return () => Promise.reject(new Error("TIMEOUT (injected)"));
      }
      const value: unknown = Reflect.get(target, property, receiver);
      return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
  const a = new PartitionLeases(flaky, "engine-a", 4, idle, testLogger, timing);
  await a.start();
  const b = new PartitionLeases(kv, "engine-b", 4, idle, testLogger, timing);
  await b.start();
  try {
    await waitUntil("the partitions to be shared two and two", () =>
      a.holding.length === 2 && b.holding.length === 2 ? true : undefined,
    );
    expect(failDelete).toBe(false);
    expect([...a.holding, ...b.holding].sort()).toEqual([0, 1, 2, 3]);
  } finally {
    await b.stop();
    await a.stop();
  }
});
