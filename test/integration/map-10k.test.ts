/**
 * A `map` over 10,000 items works end to end: every item is an execution of its own, the join
 * is batched, and the parent's record (whose results outgrow a NATS message) is stored in chunks.
 */
import { connect, type NatsConnection } from "nats";
import { afterAll, beforeAll, expect, it } from "vitest";
import { loadEngineConfig } from "../../engine/config.ts";
import { Executions } from "../../engine/orchestrator/executions.ts";
import { Orchestrator } from "../../engine/orchestrator/orchestrator.ts";
import { useNatsServer } from "../helpers/nats-server.ts";
import { testLogger } from "../helpers/test-logger.ts";
import { serveScripted, type ScriptedWorker } from "../helpers/scripted-worker.ts";

const server = useNatsServer();
/** Each item's padding differs, so results swapped or mixed between items show. */
const padding = (index: number) => `${index}:`.padEnd(180, "x");
let nc: NatsConnection;
let engine: Orchestrator;
let worker: ScriptedWorker;

beforeAll(async () => {
  nc = await connect({ servers: server().url });
  engine = await Orchestrator.create(nc, loadEngineConfig({ NATS_URL: server().url }), testLogger);
  await engine.start();
  // Each output is ~200 bytes, so 10,000 of them are ~2 MB: twice the server's max payload.
  worker = await serveScripted(nc, {
    pad: (input) => ({ index: input, pad: padding(input as number) }),
  });
});

afterAll(async () => {
  worker?.stop();
  await engine?.stop();
  await nc?.close();
});

it("maps over 10,000 items", async () => {
  const executions = await Executions.connect(nc);
  await executions.apply(`baton: v1
name: big-map
steps:
  - name: each
    map:
      items: \${ [0..9999] }
      concurrency: 200
      steps:
        - name: pad-one
          call: pad
          with: \${ $item }
  - name: count
    return: \${ $count($steps.each.output) }
`);
  const { id } = await executions.start("big-map", {});
  const record = await executions.waitForEnd(id, 390_000);
  expect(record?.status).toBe("succeeded");
  expect(record?.output).toBe(10_000);
  // Every item's own result, in the items' order: not only as many results as items. (The
  // results are read from the record: as an output they would outgrow a history message.)
  const context = record!.snapshot.context as { steps: Record<string, { output: unknown }> };
  const results = context.steps.each!.output as { index: number; pad: string }[];
  expect(results).toHaveLength(10_000);
  const wrong = results.flatMap((result, index) =>
    result?.index === index && result.pad === padding(index) ? [] : [{ index, result }],
  );
  expect(wrong.slice(0, 5)).toEqual([]);
  // The parent's record outgrew one message: it is stored in chunks.
  const keys: string[] = [];
  for await (const key of await (await nc.jetstream().views.kv("baton_executions")).keys(`${id}.chunk.>`))
    keys.push(key);
  expect(keys.length).toBeGreaterThan(1);
}, 400_000);
