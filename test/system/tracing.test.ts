/**
 * One trace per execution, across processes and an engine restart. Real processes export over
 * OTLP/HTTP (JSON) to a receiver inside this test: the API with its engine
 * (`engine/api/run-api.ts`) and a worker (`baton worker functions/examples.ts`), configured only by
 * the standard OTEL_* variables. The execution has a step that succeeds on its second attempt, a
 * `map` over three items, a `receive` that waits for a signal — the engine is stopped and a new
 * one started while it waits — and a last call. What arrives must be one trace with the right
 * parents and children, whichever process exported each span.
 */
import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signGithubBody } from "../../engine/triggers/github-webhook.ts";
import { useNatsServer } from "../helpers/nats-server.ts";
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from "../helpers/otlp-receiver.ts";
import { killAllProcesses, spawnProcess, waitUntil, type TestProcess } from "../helpers/processes.ts";

const root = join(import.meta.dirname, "../..");
const server = useNatsServer();
const token = "tracing-test-token-0123456789";
const githubSecret = "tracing-test-github-secret";
let receiver: OtlpReceiver;

const workflow = `baton: v1
name: traced
steps:
  - name: prepare
    call: flaky
    with: { failures: 1, items: [1, 2, 3] }
    retry: { attempts: 3, delay: 50ms }
  - name: fan
    map:
      items: \${ $steps.prepare.output.items }
      steps:
        - name: double
          call: add
          with:
            a: \${ $item }
            b: \${ $item }
  - name: approve
    receive: { signal: go, timeout: 10m }
  - name: finish
    call: echo
    with:
      doubled: \${ $steps.fan.output }
      by: \${ $steps.approve.output.by }
`;

const tracingEnv = () => ({
  NATS_URL: server().url,
  OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
  OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
  // Export soon after a span ends: the test waits for spans, not for the default 5 s batches.
  OTEL_BSP_SCHEDULE_DELAY: "100",
});

function startApi(name: string): TestProcess {
  return spawnProcess(process.execPath, ["--import", "tsx", join(root, "engine/api/run-api.ts")], {
    name,
    cwd: root,
    env: {
      ...tracingEnv(),
      BATON_ENGINE_ID: name,
      BATON_LISTEN: "127.0.0.1:0",
      BATON_API_TOKENS: token,
      BATON_GITHUB_SECRET: githubSecret,
    },
  });
}

async function listeningUrl(api: TestProcess): Promise<string> {
  const match = await api.waitForLine(/"message":"api listening".*"url":"(http:\/\/[^"]+)"/, {
    timeoutMs: 30_000,
  });
  return match[1]!;
}

async function call<T>(base: string, method: string, path: string, body?: unknown, yaml?: string) {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(yaml !== undefined
        ? { "content-type": "application/yaml" }
        : body !== undefined
          ? { "content-type": "application/json" }
          : {}),
    },
    body: yaml ?? (body === undefined ? undefined : JSON.stringify(body)),
  });
  const text = await response.text();
  return { status: response.status, body: (text ? JSON.parse(text) : undefined) as T };
}

beforeAll(async () => {
  receiver = await startOtlpReceiver();
});

afterAll(async () => {
  await killAllProcesses();
  await receiver?.close();
});

describe("tracing across the engine, a restart and the workers", () => {
  let traceId: string;
  let trace: ReceivedSpan[];
  let firstEnginePid: number;
  let secondEnginePid: number;
  let base: string;

  beforeAll(async () => {
    // The compiled `baton worker` (dist/, as users run it), not the sources: its bundle carries
    // its own copy of @opentelemetry/api beside the SDK's, and its spans must still join the trace.
    const worker = spawnProcess(
      process.execPath,
      [join(root, "bin/baton.mjs"), "worker", join(root, "functions/examples.ts")],
      {
        name: "worker",
        cwd: root,
        env: { ...tracingEnv(), BATON_WORKER_NAME: "traced-worker", BATON_FROM_SOURCE: undefined },
      },
    );
    await worker.waitForLine(/serving/, { timeoutMs: 30_000 });

    const first = startApi("engine-1");
    firstEnginePid = first.pid;
    base = await listeningUrl(first);
    expect((await call(base, "PUT", "/v1/workflows/traced", undefined, workflow)).status).toBe(201);
    const started = await call<{ id: string }>(base, "POST", "/v1/workflows/traced/executions", {});
    expect(started.status).toBe(202);
    const id = started.body.id;

    // Parked on the signal: the first engine goes (flushing what it has), a second one takes over.
    await waitUntil(
      "the execution to wait for its signal",
      async () => {
        const { body } = await call<{ status: string }>(base, "GET", `/v1/executions/${id}`);
        return body.status === "waiting" ? true : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    expect((await first.kill("SIGTERM", 20_000)).code).toBe(0);
    const second = startApi("engine-2");
    secondEnginePid = second.pid;
    base = await listeningUrl(second);
    expect((await call(base, "POST", `/v1/executions/${id}/signals/go`, { by: "sam" })).status).toBe(202);
    const ended = await call<{ status: string; traceId: string | null; output: unknown }>(
      base,
      "GET",
      `/v1/executions/${id}/result?wait=30s`,
    );
    expect(ended.status).toBe(200);
    expect(ended.body.status).toBe("succeeded");
    expect(ended.body.output).toEqual({ doubled: [2, 4, 6], by: "sam" });
    expect(ended.body.traceId).toMatch(/^[0-9a-f]{32}$/);
    traceId = ended.body.traceId!;

    // Everything the run produced, once the last spans (the worker's and the end) have arrived.
    trace = await waitUntil(
      "the whole trace to be exported",
      () => {
        const spans = receiver.spans.filter((span) => span.traceId === traceId);
        const done =
          spans.some((span) => span.name === "end succeeded") &&
          spans.some((span) => span.name === "function echo") &&
          spans.some((span) => span.name === "step finish");
        return done ? spans : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    );
  });

  const named = (name: string) => trace.filter((span) => span.name === name);
  const one = (name: string) => {
    const spans = named(name);
    expect(spans, `spans named "${name}": ${spans.length}`).toHaveLength(1);
    return spans[0]!;
  };
  const byId = (spanId: string | undefined) => trace.find((span) => span.spanId === spanId);

  it("is one tree: a single root, and every other span's parent is in the trace", () => {
    expect(receiver.rejected).toEqual([]);
    const roots = trace.filter((span) => span.parentSpanId === undefined);
    expect(roots.map((span) => span.name)).toEqual(["workflow traced"]);
    for (const span of trace) {
      if (span.parentSpanId !== undefined) expect(byId(span.parentSpanId), span.name).toBeDefined();
      expect(span.end, span.name).toBeGreaterThanOrEqual(span.start);
    }
    // No span was exported twice (a replayed or resent transition plans no new spans).
    expect(new Set(trace.map((span) => span.spanId)).size).toBe(trace.length);
  });

  it("has a span per step under the execution, and a span per attempt under its step", () => {
    const execution = one("workflow traced");
    for (const step of ["prepare", "fan", "approve", "finish"]) {
      const span = one(`step ${step}`);
      expect(span.parentSpanId).toBe(execution.spanId);
      expect(span.attributes).toMatchObject({
        "baton.workflow": "traced",
        "baton.revision": 1,
        "baton.step": step,
        "baton.outcome": "succeeded",
      });
    }
    const prepare = one("step prepare");
    const attempts = named("attempt flaky").sort(
      (a, b) => Number(a.attributes["baton.attempt"]) - Number(b.attributes["baton.attempt"]),
    );
    expect(attempts.map((span) => span.attributes["baton.attempt"])).toEqual([1, 2]);
    for (const attempt of attempts) expect(attempt.parentSpanId).toBe(prepare.spanId);
    expect(attempts[0]!.status.code).toBe(2);
    expect(attempts[0]!.attributes["baton.error.code"]).toBe("Flaky");
    expect(attempts[1]!.status.code).not.toBe(2);
    // The execution's end, and each item's (items are executions of their own) under the item.
    const ends = named("end succeeded");
    expect(ends.filter((span) => span.parentSpanId === execution.spanId)).toHaveLength(1);
    expect(ends.map((span) => byId(span.parentSpanId)?.name).sort()).toEqual([
      "workflow traced",
      ...[0, 1, 2].map((i) => `workflow traced item ${i}`),
    ]);
  });

  it("follows each attempt into the worker, as a child of the engine's attempt span", () => {
    const workerSpans = trace.filter((span) => span.name.startsWith("function "));
    // flaky twice, add three times (one per item), echo once.
    expect(workerSpans.map((span) => span.name).sort()).toEqual([
      "function add",
      "function add",
      "function add",
      "function echo",
      "function flaky",
      "function flaky",
    ]);
    for (const span of workerSpans) {
      expect(span.resource["service.name"]).toBe("baton-worker");
      const parent = byId(span.parentSpanId)!;
      expect(parent.name).toBe(`attempt ${span.attributes["baton.function"] as string}`);
      expect(parent.attributes["baton.attempt"]).toBe(span.attributes["baton.attempt"]);
      expect(parent.resource["service.name"]).toBe("baton-engine");
      expect(span.attributes["baton.worker"]).toMatch(/^traced-worker/);
    }
    const failedRun = workerSpans.find(
      (span) => span.attributes["baton.attempt"] === 1 && span.name === "function flaky",
    );
    expect(failedRun?.status.code).toBe(2);
  });

  it("puts the map's items under the map step, each with its own steps and attempts", () => {
    const fan = one("step fan");
    const items = trace.filter((span) => span.name.startsWith("workflow traced item "));
    expect(items.map((span) => span.name).sort()).toEqual([0, 1, 2].map((i) => `workflow traced item ${i}`));
    for (const item of items) {
      expect(item.parentSpanId).toBe(fan.spanId);
      const double = trace.filter((span) => span.name === "step double" && span.parentSpanId === item.spanId);
      expect(double).toHaveLength(1);
      const attempts = trace.filter((span) => span.parentSpanId === double[0]!.spanId);
      expect(attempts.map((span) => span.name)).toEqual(["attempt add"]);
    }
  });

  it("continues the trace in the engine that took over after the restart", () => {
    const exporters = (name: string) => named(name).map((span) => span.resource["process.pid"]);
    expect(exporters("workflow traced")).toEqual([firstEnginePid]);
    // The wait began under the first engine and ended under the second: one span, from the second.
    expect(exporters("step approve")).toEqual([secondEnginePid]);
    expect(exporters("step finish")).toEqual([secondEnginePid]);
    const approve = one("step approve");
    expect(approve.start).toBeLessThan(one("step fan").end + 1);
  });

  it("links the execution to the API request that started it", () => {
    const [link] = one("workflow traced").links;
    expect(link).toBeDefined();
    expect(link!.traceId).not.toBe(traceId);
    const request = receiver.spans.filter((span) => span.traceId === link!.traceId);
    expect(request.find((span) => span.spanId === link!.spanId)).toBeDefined();
    expect(request.some((span) => span.attributes["http.route"] === "/v1/workflows/:name/executions")).toBe(
      true,
    );
  });
});

describe("tracing a webhook delivery", () => {
  it("links the execution a GitHub delivery starts to the webhook request", async () => {
    const api = startApi("engine-hooks");
    const base = await listeningUrl(api);
    const hooked = `baton: v1
name: traced-hook
triggers:
  - github: { events: [push] }
steps:
  - { name: note, call: echo }
`;
    expect((await call(base, "PUT", "/v1/workflows/traced-hook", undefined, hooked)).status).toBe(201);
    const body = JSON.stringify({ ref: "refs/heads/main", repository: { full_name: "baton/demo" } });
    const delivered = await fetch(`${base}/v1/hooks/github`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-github-event": "push",
        "x-github-delivery": randomUUID(),
        "x-hub-signature-256": signGithubBody(githubSecret, body),
      },
      body,
    });
    expect(delivered.status).toBe(202);
    const [execution] = ((await delivered.json()) as { executions: string[] }).executions;
    const ended = await call<{ traceId: string }>(base, "GET", `/v1/executions/${execution}/result?wait=30s`);
    expect(ended.status).toBe(200);
    const root = await waitUntil(
      "the delivered execution's root span",
      () =>
        receiver.spans.find(
          (span) => span.traceId === ended.body.traceId && span.name === "workflow traced-hook",
        ),
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    const [link] = root.links;
    expect(link).toBeDefined();
    const request = await waitUntil(
      "the webhook request's spans",
      () => {
        const spans = receiver.spans.filter((span) => span.traceId === link!.traceId);
        return spans.some((span) => span.spanId === link!.spanId) ? spans : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    expect(request.some((span) => span.attributes["http.route"] === "/v1/hooks/github")).toBe(true);
  });
});
