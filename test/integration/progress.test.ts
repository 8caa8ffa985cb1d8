/**
 * Progress (`ctx.progress`): a real SDK worker running functions/train.ts reports progress; it
 * reaches the execution's event websocket as `AttemptProgress` and its view as `progress`, at
 * most a few reports per second per attempt, over core NATS only (no stream stores it).
 */
import { readFileSync } from "node:fs";
import type { FastifyInstance } from "fastify";
import { connect, type NatsConnection } from "nats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { WebSocket } from "ws";
import { buildServer } from "../../engine/api/server.ts";
import { loadEngineConfig } from "../../engine/config.ts";
import { Executions } from "../../engine/orchestrator/executions.ts";
import { Orchestrator } from "../../engine/orchestrator/orchestrator.ts";
import { trainModel } from "../../functions/train.ts";
import { serve, type WorkerHandle } from "../../sdk/index.ts";
import { maxProgressPerSecond, type ProgressReport } from "../../sdk/progress.ts";
import { subjects } from "../../sdk/protocol.ts";
import { useNatsServer } from "../helpers/nats-server.ts";
import { waitUntil } from "../helpers/processes.ts";
import { testLogger } from "../helpers/test-logger.ts";

const server = useNatsServer();
const quiet = () => undefined;
let nc: NatsConnection;
let engine: Orchestrator;
let executions: Executions;
let worker: WorkerHandle;
let app: FastifyInstance;

beforeAll(async () => {
  nc = await connect({ servers: server().url });
  engine = await Orchestrator.create(nc, loadEngineConfig({ NATS_URL: server().url }), testLogger);
  await engine.start();
  executions = await Executions.connect(nc);
  worker = await serve({
    servers: server().url,
    functions: [trainModel],
    name: "progress-test",
    logger: { debug: quiet, info: quiet, warn: quiet, error: quiet },
  });
  app = await buildServer({ executions });
  await app.ready();
  const yaml = readFileSync(new URL("../../workflows/train-model.yaml", import.meta.url), "utf8");
  const submitted = await app.inject({
    method: "PUT",
    url: "/v1/workflows/train-model",
    headers: { "content-type": "application/yaml" },
    payload: yaml,
  });
  expect(submitted.statusCode, submitted.body).toBe(201);
});

afterAll(async () => {
  await app?.close();
  await worker?.close();
  await engine?.stop();
  await nc?.close();
});

const start = async (input: object) => {
  const response = await app.inject({ method: "POST", url: "/train", payload: input });
  expect(response.statusCode, response.body).toBe(202);
  return response.json<{ id: string; links: { events: string; result: string } }>();
};

describe("progress", () => {
  it("reaches the event websocket as AttemptProgress and the execution's view, live", async () => {
    const { id, links } = await start({ epochs: 6, msPerEpoch: 150 });
    const messages: { type: string; seq?: number; fraction?: number; step?: string; attempt?: number }[] = [];
    let closed!: (code: number) => void;
    const end = new Promise<number>((resolve) => (closed = resolve));
    await app.injectWS(
      links.events,
      { headers: { host: "127.0.0.1:8080" } },
      {
        onInit: (ws: WebSocket) => {
          ws.on("message", (data: Buffer) =>
            messages.push(JSON.parse(data.toString("utf8")) as { type: string }),
          );
          ws.on("close", (code) => closed(code));
        },
      },
    );
    // While it runs, the view carries the last report.
    const viewed = await waitUntil("progress in the execution's view", async () => {
      const view = (await app.inject({ method: "GET", url: `/v1/executions/${id}` })).json<{
        progress?: { fraction: number; step: string; attempt: number; message?: string };
      }>();
      return view.progress && view.progress.fraction > 0 ? view.progress : undefined;
    });
    expect(viewed).toMatchObject({ step: "train", attempt: 1 });
    expect(viewed.message).toMatch(/^epoch \d\/6/);
    expect(await end).toBe(1000);
    const progress = messages.filter((message) => message.type === "AttemptProgress");
    expect(progress.length).toBeGreaterThanOrEqual(2);
    for (const message of progress) expect(message).toMatchObject({ step: "train", attempt: 1 });
    expect(progress.every((message) => message.seq === undefined)).toBe(true);
    const fractions = progress.map((message) => message.fraction!);
    expect(fractions).toEqual([...fractions].sort((a, b) => a - b));
    expect(fractions.at(-1)).toBe(1);
    // Progress is not history, and the ended execution's view no longer shows it.
    const history = (await app.inject({ method: "GET", url: `/v1/executions/${id}/history` })).json<{
      items: { type: string }[];
    }>();
    expect(history.items.some((item) => item.type === "AttemptProgress")).toBe(false);
    const ended = (await app.inject({ method: "GET", url: `/v1/executions/${id}` })).json<{
      progress?: unknown;
    }>();
    expect(ended.progress).toBeUndefined();
  });

  it("sends at most a few reports per second per attempt, the last one always, and stores none", async () => {
    const { id, links } = await start({ epochs: 100, msPerEpoch: 10 });
    const reports: ProgressReport[] = [];
    const subscription = nc.subscribe(subjects.progress(id), {
      callback: (_error, message) => reports.push(message.json<ProgressReport>()),
    });
    const result = await app.inject({ method: "GET", url: `${links.result}&wait=60s` });
    expect(result.json()).toMatchObject({ status: "succeeded" });
    await waitUntil("the last report", () => (reports.at(-1)?.fraction === 1 ? true : undefined));
    subscription.unsubscribe();
    // 101 calls; at most one report per 1/maxProgressPerSecond s, plus the flush at the attempt's
    // end. Bounded by the worker's own times (`at`: each report's is no later than its sending,
    // and later than the previous sending), not by this process's clock.
    const spanMs = Date.parse(reports.at(-1)!.at) - Date.parse(reports[0]!.at);
    expect(reports.length).toBeLessThanOrEqual(Math.floor((spanMs * maxProgressPerSecond) / 1000) + 2);
    expect(reports.length).toBeLessThan(101);
    for (let index = 1; index < reports.length; index++)
      expect(Date.parse(reports[index]!.at) - Date.parse(reports[index - 1]!.at)).toBeGreaterThanOrEqual(0);
    // No stream captures the subject: reporting progress writes nothing durable.
    const jsm = await nc.jetstreamManager();
    await expect(jsm.streams.find(subjects.progress(id))).rejects.toThrow(/no stream matches subject/);
  });
});
