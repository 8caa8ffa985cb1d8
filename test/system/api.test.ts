/**
 * The HTTP API from outside: a real process serving the API with an engine in it
 * (`node --import tsx engine/api/run-api.ts`), a real worker process
 * (`baton worker functions/examples.ts`) and a real nats-server, driven over real HTTP (fetch) and
 * a real websocket (ws). Every route, with bearer tokens; the port is picked by the process
 * (`BATON_LISTEN=127.0.0.1:0`) and read from its log.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { useNatsServer } from "../helpers/nats-server.ts";
import { killAllProcesses, spawnProcess, waitUntil, type TestProcess } from "../helpers/processes.ts";

const root = join(import.meta.dirname, "../..");
const server = useNatsServer();
const token = "system-test-token-0123456789";
const effectDir = mkdtempSync(join(tmpdir(), "baton-api-effects-"));
let apiProcess: TestProcess;
let base: string;

function startApiProcess(name: string, env: Record<string, string | undefined>): TestProcess {
  return spawnProcess(process.execPath, ["--import", "tsx", join(root, "engine/api/run-api.ts")], {
    name,
    cwd: root,
    env: { NATS_URL: server().url, BATON_ENGINE_ID: name, BATON_LISTEN: "127.0.0.1:0", ...env },
  });
}

async function listeningUrl(process: TestProcess): Promise<string> {
  const match = await process.waitForLine(/"message":"api listening".*"url":"(http:\/\/[^"]+)"/, {
    timeoutMs: 30_000,
  });
  return match[1]!;
}

beforeAll(async () => {
  apiProcess = startApiProcess("api", { BATON_API_TOKENS: token });
  base = await listeningUrl(apiProcess);
  const worker = spawnProcess(
    process.execPath,
    [join(root, "bin/baton.mjs"), "worker", join(root, "functions/examples.ts")],
    {
      name: "worker",
      cwd: root,
      env: {
        NATS_URL: server().url,
        BATON_EFFECT_DIR: effectDir,
        BATON_WORKER_NAME: "system-worker",
        BATON_LOG_LEVEL: "info",
      },
    },
  );
  await worker.waitForLine(/serving/, { timeoutMs: 30_000 });
  for (const [name, yaml] of Object.entries(workflows)) {
    const response = await api("PUT", `/v1/workflows/${name}`, { yaml });
    expect(response.status, JSON.stringify(response.body)).toBe(201);
  }
});

afterAll(async () => {
  await killAllProcesses();
  rmSync(effectDir, { recursive: true, force: true });
});

const workflows: Record<string, string> = {
  "sys-chain": `baton: v1
name: sys-chain
description: A call, an effect and a sum.
input: { type: object, required: [n], properties: { n: { type: integer } } }
steps:
  - name: nap
    call: sleep
    with: { ms: 50 }
  - name: charge
    call: effect-counter
    effect: true
    with: { n: "\${ $input.n }" }
  - name: total
    call: add
    with: { a: "\${ $input.n }", b: 1000 }
`,
  "sys-approval": `baton: v1
name: sys-approval
steps:
  - name: approved
    receive: { signal: approve, timeout: 1h }
  - name: echoed
    call: echo
`,
  "sys-failing": `baton: v1
name: sys-failing
steps:
  - name: fine
    call: echo
    with: { ok: true }
  - name: broken
    call: fail-with
    with: { code: Nope, message: failed as asked }
`,
};

interface Answer<T = unknown> {
  status: number;
  headers: Headers;
  body: T;
}

async function api<T = Record<string, unknown>>(
  method: string,
  path: string,
  options: { body?: unknown; yaml?: string; headers?: Record<string, string>; token?: string | null } = {},
): Promise<Answer<T>> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token !== null) headers.authorization = `Bearer ${options.token ?? token}`;
  let body: string | undefined;
  if (options.yaml !== undefined) {
    headers["content-type"] = "application/yaml";
    body = options.yaml;
  } else if (options.body !== undefined) {
    headers["content-type"] = "application/json";
    body = JSON.stringify(options.body);
  }
  const response = await fetch(`${base}${path}`, {
    method,
    headers,
    ...(body === undefined ? {} : { body }),
  });
  const text = await response.text();
  const type = response.headers.get("content-type") ?? "";
  return {
    status: response.status,
    headers: response.headers,
    body: (type.includes("json") && text ? JSON.parse(text) : text) as T,
  };
}

function expectProblem(answer: Answer, status: number, code: string): void {
  expect(answer.status, JSON.stringify(answer.body)).toBe(status);
  expect(answer.headers.get("content-type")).toMatch(/^application\/problem\+json/);
  expect(answer.body).toMatchObject({ status, code, type: `urn:baton:error:${code}` });
}

async function start(workflow: string, input: unknown = {}): Promise<string> {
  const answer = await api<{ id: string }>("POST", `/v1/workflows/${workflow}/executions`, { body: input });
  expect(answer.status, JSON.stringify(answer.body)).toBe(202);
  return answer.body.id;
}

async function result(id: string) {
  const answer = await api<{
    status: string;
    output?: unknown;
    error?: { code: string };
    steps: { name: string; status: string; attempts: number; effect: boolean; runs: number }[];
  }>("GET", `/v1/executions/${id}/result?wait=30s`);
  expect(answer.status, JSON.stringify(answer.body)).toBe(200);
  return answer.body;
}

/** Opens the event stream; collects messages until the server closes it. */
function follow(path: string, authorization: string | null = `Bearer ${token}`) {
  const socket = new WebSocket(`${base.replace(/^http/, "ws")}${path}`, {
    headers: authorization === null ? {} : { authorization },
  });
  const messages: { seq: number; type: string; step?: string }[] = [];
  socket.on("message", (data: Buffer) =>
    messages.push(JSON.parse(data.toString("utf8")) as { seq: number; type: string }),
  );
  const opened = new Promise<void>((resolve, reject) => {
    socket.once("open", () => resolve());
    socket.once("unexpected-response", (_request, response) =>
      reject(new Error(`refused with ${response.statusCode}`)),
    );
    socket.once("error", reject);
  });
  const closed = new Promise<number>((resolve) => socket.once("close", (code) => resolve(code)));
  return { socket, messages, opened, closed };
}

describe("the API process", () => {
  it("answers health and readiness without a token, and nothing else", async () => {
    expect((await api("GET", "/healthz", { token: null })).body).toEqual({ status: "ok" });
    expect((await api("GET", "/readyz", { token: null })).body).toEqual({
      status: "ready",
      nats: "connected",
    });
    expectProblem(await api("GET", "/v1/workflows", { token: null }), 401, "Unauthorized");
    expectProblem(
      await api("GET", "/v1/workflows", { token: "not-the-token-at-all-000" }),
      401,
      "Unauthorized",
    );
    expectProblem(await api("GET", "/metrics", { token: null }), 401, "Unauthorized");
    await expect(follow("/v1/executions/xnothing/events", null).opened).rejects.toThrow(/401/);
  });

  it("serves the workflow routes", async () => {
    const listed = await api<{ items: { name: string; revision: number; description?: string }[] }>(
      "GET",
      "/v1/workflows",
    );
    expect(listed.body.items.map((item) => item.name)).toEqual(Object.keys(workflows).sort());
    const one = await api<{ source: string; revision: number }>("GET", "/v1/workflows/sys-chain");
    expect(one.body).toMatchObject({
      name: "sys-chain",
      revision: 1,
      description: "A call, an effect and a sum.",
      source: workflows["sys-chain"],
    });
    const json = { baton: "v1", name: "sys-json", steps: [{ name: "a", return: "${ $input }" }] };
    expect((await api("PUT", "/v1/workflows/sys-json", { body: json })).status).toBe(201);
    expect((await api("PUT", "/v1/workflows/sys-json", { body: json })).status).toBe(200);
    const changed = await api("PUT", "/v1/workflows/sys-json", { body: { ...json, description: "changed" } });
    expect(changed.body).toEqual({ name: "sys-json", revision: 2, triggers: [] });
    expect((await api("GET", "/v1/workflows/sys-json?revision=1")).body).toMatchObject({
      revision: 1,
      source: JSON.stringify(json),
    });
    expect((await api("POST", "/v1/workflows:validate", { yaml: workflows["sys-chain"] })).body).toEqual({
      valid: true,
    });
    const invalid = await api<{ errors: { code: string; line: number; column: number }[] }>(
      "POST",
      "/v1/workflows:validate",
      {
        yaml: "baton: v1\nname: x\nsteps:\n  - { name: a, call: echo, next: b }\n",
      },
    );
    expectProblem(invalid, 400, "WorkflowInvalid");
    expect(invalid.body.errors[0]).toMatchObject({ code: "UnknownStep", line: 4 });
    expectProblem(
      await api("PUT", "/v1/workflows/other", { yaml: workflows["sys-chain"] }),
      400,
      "WorkflowNameMismatch",
    );
    expect((await api("DELETE", "/v1/workflows/sys-json")).status).toBe(204);
    expectProblem(await api("GET", "/v1/workflows/sys-json"), 404, "WorkflowNotFound");
    expectProblem(await api("GET", "/v1/nowhere"), 404, "RouteNotFound");
  });

  it("starts, waits for and reads an execution; the effect ran once", async () => {
    const accepted = await api<{ id: string }>("POST", "/v1/workflows/sys-chain/executions", {
      body: { n: 5 },
    });
    expect(accepted.status).toBe(202);
    expect(accepted.headers.get("location")).toBe(`/v1/executions/${accepted.body.id}`);
    expect(accepted.body).toMatchObject({ workflow: "sys-chain", revision: 1, status: "running" });
    const id = accepted.body.id;
    const done = await result(id);
    expect(done).toMatchObject({ status: "succeeded", output: 1005 });
    expect(done.steps).toEqual([
      expect.objectContaining({ name: "nap", status: "succeeded", attempts: 1, effect: false }),
      expect.objectContaining({ name: "charge", status: "succeeded", attempts: 1, effect: true }),
      expect.objectContaining({ name: "total", status: "succeeded", attempts: 1, effect: false }),
    ]);
    const view = await api("GET", `/v1/executions/${id}`);
    expect(view.body).toMatchObject({ id, input: { n: 5 }, output: 1005, status: "succeeded" });
    const history = await api<{
      items: { seq: number; type: string; step?: string; worker?: string; idempotencyKey?: string }[];
    }>("GET", `/v1/executions/${id}/history`);
    const started = history.body.items.find(
      (item) => item.type === "AttemptStarted" && item.step === "charge",
    );
    expect(started).toMatchObject({
      attempt: 1,
      worker: expect.stringContaining("system-worker") as string,
      idempotencyKey: expect.stringContaining(id) as string,
    });
    const effects = readdirSync(effectDir).filter((file) => decodeURIComponent(file).startsWith(`${id}/`));
    expect(effects).toHaveLength(1);
    expect(readFileSync(join(effectDir, effects[0]!), "utf8").trim().split("\n")).toHaveLength(1);

    const waited = await api("POST", "/v1/workflows/sys-chain/executions?wait=30s", { body: { n: 1 } });
    expect(waited.status).toBe(200);
    expect(waited.body).toMatchObject({ status: "succeeded", output: 1001 });
    const invalid = await api<{ errors: { path: string }[] }>("POST", "/v1/workflows/sys-chain/executions", {
      body: { n: "five" },
    });
    expectProblem(invalid, 400, "InputInvalid");
    expect(invalid.body.errors[0]!.path).toBe("/n");
    expectProblem(
      await api("POST", "/v1/workflows/nobody/executions", { body: {} }),
      404,
      "WorkflowNotFound",
    );
    expectProblem(await api("GET", "/v1/executions/xnobody"), 404, "ExecutionNotFound");
    expectProblem(await api("GET", "/v1/executions/%F0%9F%92%A5"), 400, "RequestInvalid");
  });

  it("returns the first execution for a repeated Idempotency-Key", async () => {
    const headers = { "idempotency-key": "system-order-1" };
    const first = await api<{ id: string }>("POST", "/v1/workflows/sys-chain/executions", {
      body: { n: 2 },
      headers,
    });
    const second = await api<{ id: string }>("POST", "/v1/workflows/sys-chain/executions", {
      body: { n: 2 },
      headers,
    });
    expect(second.body.id).toBe(first.body.id);
    expect(second.headers.get("idempotent-replayed")).toBe("true");
    expect((await result(first.body.id)).output).toBe(1002);
  });

  it("lists executions newest first with a cursor", async () => {
    const ids = [
      await start("sys-chain", { n: 10 }),
      await start("sys-chain", { n: 11 }),
      await start("sys-chain", { n: 12 }),
    ];
    for (const id of ids) await result(id);
    const page = await api<{ items: { id: string }[]; next?: string }>(
      "GET",
      "/v1/executions?workflow=sys-chain&limit=2",
    );
    expect(page.body.items.map((item) => item.id)).toEqual([ids[2], ids[1]]);
    expect(page.body.next).toEqual(expect.any(String) as string);
    const next = await api<{ items: { id: string }[] }>(
      "GET",
      `/v1/executions?workflow=sys-chain&limit=2&cursor=${page.body.next!}`,
    );
    expect(next.body.items[0]!.id).toBe(ids[0]);
    const bad = await api("GET", "/v1/executions?status=nope");
    expectProblem(bad, 400, "RequestInvalid");
  });

  it("streams events over a websocket while a signal moves the execution to its end", async () => {
    const id = await start("sys-approval");
    const stream = follow(`/v1/executions/${id}/events`);
    await stream.opened;
    await waitUntil("the first event", () => (stream.messages.length > 0 ? true : undefined));
    expect(stream.messages[0]).toMatchObject({ seq: 1, type: "ExecutionStarted" });
    const signalled = await api("POST", `/v1/executions/${id}/signals/approve`, { body: { by: "sam" } });
    expect(signalled.status).toBe(202);
    expect(signalled.body).toEqual({ id, signal: "approve" });
    expect(await stream.closed).toBe(1000);
    expect(stream.messages.at(-1)!.type).toBe("ExecutionSucceeded");
    const history = await api<{ items: unknown[] }>("GET", `/v1/executions/${id}/history`);
    expect(stream.messages).toEqual(history.body.items);
    expect((await result(id)).output).toEqual({ by: "sam" });
    expectProblem(
      await api("POST", `/v1/executions/${id}/signals/approve`, { body: {} }),
      409,
      "ExecutionEnded",
    );
    const tail = follow(`/v1/executions/${id}/events?after=${history.body.items.length - 1}`);
    expect(await tail.closed).toBe(1000);
    expect(tail.messages).toHaveLength(1);
    await expect(follow("/v1/executions/xnobody/events").opened).rejects.toThrow(/404/);
    expectProblem(await api("GET", `/v1/executions/${id}/events`), 426, "WebsocketRequired");
  });

  it("cancels, and refuses to cancel twice", async () => {
    const id = await start("sys-approval");
    const cancelled = await api("POST", `/v1/executions/${id}/cancel`);
    expect(cancelled.status).toBe(202);
    expect(await result(id)).toMatchObject({ status: "cancelled", error: { code: "Cancelled" } });
    expectProblem(await api("POST", `/v1/executions/${id}/cancel`), 409, "ExecutionEnded");
  });

  it("retries a failed execution from the failed step", async () => {
    const id = await start("sys-failing");
    const failed = await result(id);
    expect(failed).toMatchObject({ status: "failed", error: { code: "Nope" } });
    const retried = await api<{ status: string }>("POST", `/v1/executions/${id}/retry`);
    expect(retried.status).toBe(202);
    expect(retried.body).toEqual({
      id,
      status: expect.stringMatching(/^(running|waiting|failed)$/) as string,
    });
    const again = await result(id);
    // fail-with fails every time: the execution fails again, having re-run only the failed step.
    expect(again.status).toBe("failed");
    expect(again.steps).toEqual([
      expect.objectContaining({ name: "fine", status: "succeeded", runs: 1 }),
      expect.objectContaining({ name: "broken", status: "failed", runs: 2 }),
    ]);
    const types = (
      await api<{ items: { type: string }[] }>("GET", `/v1/executions/${id}/history`)
    ).body.items.map((item) => item.type);
    expect(types.filter((type) => type === "ExecutionFailed")).toHaveLength(2);
    expect(types).toContain("ExecutionRetried");
    const running = await start("sys-approval");
    expectProblem(await api("POST", `/v1/executions/${running}/retry`), 409, "ExecutionNotFailed");
    await api("POST", `/v1/executions/${running}/cancel`);
  });

  it("accepts events from outside", async () => {
    const accepted = await api<{ source: string; executions: string[] }>("POST", "/v1/events", {
      body: { type: "node.joined", data: {} },
    });
    expect(accepted.status).toBe(202);
    expect(accepted.body).toMatchObject({ source: "infra", executions: [] });
    expectProblem(
      await api("POST", "/v1/events", { body: { source: "ci", type: "done", data: {} } }),
      400,
      "RequestInvalid",
    );
  });

  it("serves metrics and the OpenAPI description", async () => {
    const metrics = await api<string>("GET", "/metrics");
    expect(metrics.status).toBe(200);
    expect(metrics.body).toMatch(/baton_executions_started_total [1-9]/);
    expect(metrics.body).toMatch(/baton_executions_finished_total\{status="succeeded"\} [1-9]/);
    expect(metrics.body).toMatch(/baton_step_duration_seconds_count\{status="succeeded"\} [1-9]/);
    expect(metrics.body).toMatch(/baton_queue_depth\{function="echo",lane="pure"\} 0/);
    expect(metrics.body).toMatch(/process_cpu_user_seconds_total/);
    const docs = await api<{ openapi: string; paths: Record<string, unknown> }>("GET", "/docs");
    expect(docs.body.openapi).toMatch(/^3\./);
    expect(Object.keys(docs.body.paths)).toEqual(
      expect.arrayContaining(["/v1/workflows/{name}", "/v1/executions/{id}/events", "/v1/executions"]),
    );
  });

  it("closes event streams with 1001 and exits 0 on SIGTERM", async () => {
    const id = await start("sys-approval");
    const stream = follow(`/v1/executions/${id}/events`);
    await stream.opened;
    // Longer than the process's own grace (BATON_SHUTDOWN_GRACE_MS, 30 s): a stop that hangs shows where.
    const exit = apiProcess.kill("SIGTERM", 45_000);
    expect(await stream.closed).toBe(1001);
    expect((await exit).code, apiProcess.output().slice(-4000)).toBe(0);
  });
});

describe("listening without a token", () => {
  it("listens on loopback and says so", async () => {
    const open = startApiProcess("api-open", { BATON_API_TOKENS: "" });
    const url = await listeningUrl(open);
    expect(open.output()).toMatch(/no API token configured/);
    const response = await fetch(`${url}/v1/workflows`);
    expect(response.status).toBe(200);
    await open.kill("SIGTERM");
  });

  it("refuses any other address", async () => {
    const refused = startApiProcess("api-refused", { BATON_API_TOKENS: "", BATON_LISTEN: "0.0.0.0:0" });
    const exit = await refused.waitForExit(30_000);
    expect(exit.code).toBe(2);
    expect(refused.stderr()).toMatch(/refusing to listen on 0\.0\.0\.0:0 without a token/);
  });

  it("refuses a token that is too short", async () => {
    const refused = startApiProcess("api-short", { BATON_API_TOKENS: "short" });
    expect((await refused.waitForExit(30_000)).code).toBe(2);
    expect(refused.stderr()).toMatch(/BATON_API_TOKENS/);
  });
});
