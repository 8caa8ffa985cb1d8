/**
 * The trigger examples end to end, with real processes: two engine replicas (`baton engine`) and
 * a worker (`baton worker functions/weather.ts functions/examples.ts`) over a real nats-server.
 * The weather harvester runs on a schedule (every second here), emits raw readings on the queue
 * subject weather.raw, and each message starts exactly one weather-process execution, which
 * stores the cleaned readings; the worker's node joining starts node-warm-up.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type NatsConnection } from "nats";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { ExecutionRecord } from "../../engine/orchestrator/execution-record.ts";
import { Executions } from "../../engine/orchestrator/executions.ts";
import { useNatsServer } from "../helpers/nats-server.ts";
import { killAllProcesses, spawnProcess, waitUntil, type TestProcess } from "../helpers/processes.ts";

const root = join(import.meta.dirname, "../..");
const server = useNatsServer();
const weatherDir = mkdtempSync(join(tmpdir(), "baton-weather-"));
const logDir = mkdtempSync(join(tmpdir(), "baton-logs-"));
let nc: NatsConnection;
let executions: Executions;
let engineA: TestProcess;

const env = () => ({
  NATS_URL: server().url,
  BATON_WEATHER_DIR: weatherDir,
  BATON_LOG_DIR: logDir,
  BATON_LOG_LEVEL: "warn",
});

async function startEngine(name: string): Promise<TestProcess> {
  const engine = spawnProcess(process.execPath, [join(root, "bin/baton.mjs"), "engine"], {
    name,
    env: { ...env(), BATON_ENGINE_ID: name },
  });
  await engine.waitForLine(/engine ready/);
  return engine;
}

const example = (file: string) => readFileSync(join(root, "workflows", file), "utf8");

beforeAll(async () => {
  nc = await connect({ servers: server().url });
  executions = await Executions.connect(nc);
  await executions.apply(example("weather-process.yaml"));
  await executions.apply(example("node-warm-up.yaml"));
  // The harvester as shipped runs every ten minutes; every second here.
  await executions.apply(
    example("weather-harvest.yaml").replace('cron: "*/10 * * * *"', 'cron: "* * * * * *"'),
  );
  engineA = await startEngine("engine-a");
  await startEngine("engine-b");
  const worker = spawnProcess(
    process.execPath,
    [
      join(root, "bin/baton.mjs"),
      "worker",
      join(root, "functions/weather.ts"),
      join(root, "functions/examples.ts"),
      join(root, "functions/logs.ts"),
    ],
    { name: "worker", env: { ...env(), BATON_LOG_LEVEL: "info" } },
  );
  await worker.waitForLine(/serving/);
}, 60_000);

afterAll(async () => {
  await killAllProcesses();
  await nc?.close();
  rmSync(weatherDir, { recursive: true, force: true });
  rmSync(logDir, { recursive: true, force: true });
});

async function executionsOf(workflow: string): Promise<ExecutionRecord[]> {
  return (await executions.list({ workflow, limit: 1_000 })).items;
}

it("runs the weather pipeline: each tick harvests once, and each message is processed once", async () => {
  const succeeded = (records: ExecutionRecord[]) => records.filter((record) => record.status === "succeeded");
  const processedAtLeast = (count: number) =>
    waitUntil(
      `${count} processed batches`,
      async () => (succeeded(await executionsOf("weather-process")).length >= count ? true : undefined),
      { timeoutMs: 45_000 },
    );
  await processedAtLeast(2);
  // An engine replica dies and another takes its place: the schedule goes on, still once per tick.
  await engineA.kill("SIGKILL");
  await startEngine("engine-c");
  const before = succeeded(await executionsOf("weather-process")).length;
  await processedAtLeast(before + 2);
  // Stop the schedule, then let what is under way finish.
  await executions.removeWorkflow("weather-harvest");
  const harvests = await waitUntil(
    "the harvests finish",
    async () => {
      const records = await executionsOf("weather-harvest");
      return records.every((record) => record.status !== "running") ? records : undefined;
    },
    { timeoutMs: 40_000 },
  );
  const emitted = succeeded(harvests).length;
  const processed = await waitUntil(
    "every batch processed",
    async () => {
      const records = succeeded(await executionsOf("weather-process"));
      return records.length >= emitted ? records : undefined;
    },
    { timeoutMs: 40_000 },
  );
  // One execution per due time and one per message, with two engines running and one replaced.
  expect(processed.length).toBe(emitted);
  const dueTimes = harvests.map(
    (record) => (record.snapshot.context as { event: { scheduledAt: string } }).event.scheduledAt,
  );
  expect(new Set(dueTimes).size).toBe(dueTimes.length);
  const lines = readFileSync(join(weatherDir, "readings.jsonl"), "utf8").trim().split("\n");
  const stored = processed.reduce(
    (sum, record) => sum + ((record.output as { stored: number }).stored ?? 0),
    0,
  );
  expect(lines.length).toBe(stored);
}, 150_000);

it("warms up the node its worker runs on when it joins", async () => {
  const [warmUp] = await waitUntil(
    "a warm-up",
    async () => {
      const records = (await executionsOf("node-warm-up")).filter((record) => record.status === "succeeded");
      return records.length > 0 ? records : undefined;
    },
    { timeoutMs: 20_000 },
  );
  expect(warmUp?.output).toEqual({ warmed: hostname() });
  expect(await executionsOf("node-warm-up")).toHaveLength(1);
}, 30_000);

it("compacts log segments on its schedule", async () => {
  // Three segments written before the next due time; the schedule runs every second here.
  for (const [index, line] of ["a", "b", "c"].entries())
    writeFileSync(join(logDir, `segment-${index}.log`), `${line}\n`);
  await executions.apply(
    example("hourly-log-compaction.yaml")
      .replace('cron: "0 * * * *"', 'cron: "* * * * * *"')
      .replace("catchUp: all", "catchUp: none"),
  );
  const compacted = await waitUntil(
    "a run that compacted the segments",
    async () =>
      (await executionsOf("hourly-log-compaction")).find(
        (record) => record.status === "succeeded" && (record.output as { compacted: number }).compacted > 0,
      ),
    { timeoutMs: 30_000 },
  );
  await executions.removeWorkflow("hourly-log-compaction");
  const { compacted: count, into } = compacted.output as { compacted: number; into: string };
  expect(count).toBe(3);
  expect(readFileSync(join(logDir, into), "utf8")).toBe("a\nb\nc\n");
  expect(readdirSync(logDir).filter((name) => name.startsWith("segment-"))).toEqual([]);
}, 60_000);
