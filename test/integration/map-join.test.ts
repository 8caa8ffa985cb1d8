/**
 * A `map`'s join by reference (engine/orchestrator/map-join.ts): the parent's record counts the
 * answers but keeps none of the items' results, so its writes do not grow with them; the join
 * reads every result from the items' own records, in item order; an item's record outlives its
 * retention while its parent runs. Real nats-server and orchestrator, with a retention of 1 s.
 */
import { connect, type NatsConnection } from "nats";
import { afterAll, beforeAll, expect, it } from "vitest";
import { loadEngineConfig } from "../../engine/config.ts";
import { Executions } from "../../engine/orchestrator/executions.ts";
import { newExecutionId } from "../../engine/orchestrator/ids.ts";
import { Orchestrator } from "../../engine/orchestrator/orchestrator.ts";
import { buckets } from "../../sdk/protocol.ts";
import { useNatsServer } from "../helpers/nats-server.ts";
import { waitUntil } from "../helpers/processes.ts";
import { testLogger } from "../helpers/test-logger.ts";

const server = useNatsServer();
let nc: NatsConnection;
let engine: Orchestrator;

beforeAll(async () => {
  nc = await connect({ servers: server().url });
  engine = await Orchestrator.create(
    nc,
    loadEngineConfig({ NATS_URL: server().url, BATON_RETENTION: "1s" }),
    testLogger,
  );
  await engine.start();
});

afterAll(async () => {
  await engine?.stop();
  await nc?.close();
});

it("keeps the items' results out of the parent's writes, and joins them in item order", async () => {
  const items = 300;
  const executions = await Executions.connect(nc);
  // Each result is ~1 KB and names its item: 300 of them are ~300 KB, which a parent keeping
  // results as they come would carry in each of its writes towards the end.
  await executions.apply(`baton: v1
name: wide-map
steps:
  - name: each
    map:
      items: \${ [0..${items - 1}] }
      concurrency: 50
      steps:
        - name: one
          return:
            index: \${ $item }
            pad: \${ $pad($string($item) & ":", 1000, "x") }
`);
  const id = newExecutionId();
  // Every write of the parent's record, as it happens (a KV write is a message on its subject).
  const writes: { bytes: number; running: boolean }[] = [];
  const watch = nc.subscribe(`$KV.${buckets.executions}.${id}`, {
    callback: (_, message) => {
      const text = new TextDecoder().decode(message.data);
      writes.push({ bytes: message.data.length, running: text.includes('"status":"running"') });
    },
  });
  await nc.flush();
  await executions.start("wide-map", {}, { id });
  const record = await executions.waitForEnd(id, 120_000);
  watch.unsubscribe();
  expect(record?.status).toBe("succeeded");
  const output = record!.output as { index: number; pad: string }[];
  expect(output).toHaveLength(items);
  const wrong = output.flatMap((result, index) =>
    result?.index === index && result.pad === `${index}:`.padEnd(1000, "x") ? [] : [{ index, result }],
  );
  expect(wrong.slice(0, 5)).toEqual([]);
  // While the map runs, no write of the parent carries the results (a quarter of them would be
  // 75 KB). (The write that joins is over 512 KiB, output and step output: stored in chunks.)
  const running = writes.filter((write) => write.running);
  expect(running.length).toBeGreaterThan(1);
  expect(Math.max(...running.map((write) => write.bytes))).toBeLessThan(64 * 1024);
});

it("keeps an ended item while its parent runs, so a map longer than the retention still joins", async () => {
  const executions = await Executions.connect(nc);
  await executions.apply(`baton: v1
name: slow-map
steps:
  - name: each
    map:
      items: \${ $input.wakeAt }
      steps:
        - name: nap
          wait: { until: "\${ $item }" }
        - name: done
          return: \${ $item }
`);
  // The first item ends at once; the second 4 s later, long past the first's retention (1 s).
  const wakeAt = [new Date().toISOString(), new Date(Date.now() + 4_000).toISOString()];
  const { id } = await executions.start("slow-map", { wakeAt });
  const record = await executions.waitForEnd(id, 60_000);
  expect(record?.error ?? null).toBeNull();
  expect(record?.status).toBe("succeeded");
  expect(record?.output).toEqual(wakeAt);
  // Once the parent has ended, its items go as any execution does.
  const items = await nc.jetstream().views.kv(buckets.executions);
  await waitUntil("the items' records to be removed", async () => {
    const left = await Promise.all([0, 1].map((index) => items.get(`${id}_each_1_${index}`)));
    return left.every((entry) => !entry || entry.operation !== "PUT") ? true : undefined;
  });
});
