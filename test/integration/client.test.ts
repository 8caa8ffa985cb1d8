/**
 * The SDK's BatonClient against the real thing: the HTTP API (startApi) and an engine in this
 * process, a worker serving functions/examples.ts, all on a real nats-server. Everything the
 * client does goes over HTTP and the websocket, as it would from another program.
 */
import type { AddressInfo } from "node:net";
import { createServer as createHttpServer } from "node:http";
import { createServer, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startApi, type RunningApi } from "../../engine/api/start-api.ts";
import { loadApiConfig, loadEngineConfig } from "../../engine/config.ts";
import { startEngine, type RunningEngine } from "../../engine/main.ts";
import { add, echo, failWith, sleep } from "../../functions/examples.ts";
import {
  BatonApiError,
  BatonClient,
  BatonConnectionError,
  ExecutionFailedError,
  ResultTimeoutError,
  WorkflowInvalidError,
  createJsonLogger,
  serve,
  type HistoryEvent,
  type WorkerHandle,
} from "../../sdk/index.ts";
import { useNatsServer } from "../helpers/nats-server.ts";
import { testLogger } from "../helpers/test-logger.ts";

const server = useNatsServer();
const token = "client-test-token-0123456789";
let engine: RunningEngine;
let api: RunningApi;
let securedApi: RunningApi;
let worker: WorkerHandle;
let baton: BatonClient;
const serverSockets = new Set<Socket>();

const greet = `baton: v1
name: client-greet
input:
  type: object
  required: [name]
  properties:
    name: { type: string }
steps:
  - name: greet
    call: echo
    with:
      text: hello, \${ $input.name }
  - name: sum
    call: add
    with: { a: 2, b: 3 }
  - name: done
    return:
      text: \${ $steps.greet.output.text }
      sum: \${ $steps.sum.output }
`;

const fails = `baton: v1
name: client-fails
steps:
  - name: first
    call: echo
    with: { ok: true }
  - name: boom
    call: fail-with
    with: { code: Broken, message: it broke }
`;

const approval = `baton: v1
name: client-approval
steps:
  - name: approval
    receive:
      signal: approve
      timeout: 1h
  - name: done
    return:
      by: \${ $steps.approval.output.by }
`;

const slow = `baton: v1
name: client-slow
steps:
  - name: nap
    call: sleep
    with: { ms: 300 }
`;

beforeAll(async () => {
  const natsUrl = server().url;
  engine = await startEngine(
    { ...loadEngineConfig({ NATS_URL: natsUrl }), engineId: "client-test" },
    testLogger,
  );
  api = await startApi({ config: loadApiConfig({ BATON_LISTEN: "127.0.0.1:0" }), natsUrl, log: testLogger });
  securedApi = await startApi({
    config: loadApiConfig({ BATON_LISTEN: "127.0.0.1:0", BATON_API_TOKENS: token }),
    natsUrl,
    log: testLogger,
  });
  for (const running of [api, securedApi])
    running.app.server.on("connection", (socket: Socket) => serverSockets.add(socket));
  worker = await serve({
    servers: natsUrl,
    functions: [echo, add, failWith, sleep],
    concurrency: 4,
    logger: createJsonLogger({ level: process.env.BATON_TEST_VERBOSE === "1" ? "info" : "silent" }),
  });
  baton = new BatonClient({ url: api.url });
  for (const text of [greet, fails, approval, slow]) await baton.workflows.apply(text);
});

afterAll(async () => {
  await worker?.close();
  // A websocket upgrade the API refuses (401, 404) leaves the server's end of the connection
  // open (@fastify/websocket hands the raw socket to fastify outside the HTTP server's
  // bookkeeping; the client has closed its end), and close() would wait for it forever. Until
  // engine/api ends those connections itself, end them here.
  for (const socket of serverSockets) socket.destroy();
  await securedApi?.close();
  await api?.close();
  await engine?.stop();
});

describe("workflows", () => {
  it("applies a workflow: created once, then the same revision for the same text", async () => {
    const text = greet.replace("client-greet", "client-apply-once");
    const [first] = await baton.workflows.apply(text);
    expect(first).toMatchObject({ name: "client-apply-once", revision: 1, created: true });
    const [again] = await baton.workflows.apply(text);
    expect(again).toMatchObject({ name: "client-apply-once", revision: 1, created: false });
    const [changed] = await baton.workflows.apply(`${text}description: now with one\n`);
    expect(changed).toMatchObject({ revision: 2, created: false });
    const stored = await baton.workflows.get("client-apply-once");
    expect(stored.revision).toBe(2);
    expect(stored.source).toContain("now with one");
    expect((await baton.workflows.get("client-apply-once", { revision: 1 })).source).not.toContain(
      "now with one",
    );
  });

  it("refuses an invalid workflow with every problem, its line and column", async () => {
    const text = "baton: v1\nname: client-broken\nsteps:\n  - name: a\n    call: echo\n    next: nowhere\n";
    const error = await baton.workflows.apply(text).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(WorkflowInvalidError);
    const invalid = error as WorkflowInvalidError;
    expect(invalid).toMatchObject({ code: "WorkflowInvalid", status: 400 });
    expect(invalid.problems).toEqual([
      expect.objectContaining({ code: "UnknownStep", path: "steps[0].next", line: 6, column: 11 }),
    ]);
    await expect(baton.workflows.get("client-broken")).rejects.toMatchObject({
      code: "WorkflowNotFound",
      status: 404,
    });
  });

  it("applies every document of a multi-document text, or none when one is invalid", async () => {
    const two = `baton: v1\nname: client-first\nsteps:\n  - name: a\n    call: echo\n---\n# the second\nbaton: v1\nname: client-second\nsteps:\n  - name: b\n    call: echo\n`;
    const applied = await baton.workflows.apply(two);
    expect(applied.map((workflow) => workflow.name)).toEqual(["client-first", "client-second"]);
    expect((await baton.workflows.get("client-second")).source).toContain("# the second");
    expect((await baton.workflows.get("client-second")).source).not.toContain("client-first");

    const broken = two
      .replaceAll("client-first", "client-third")
      .replaceAll("client-second", "client-fourth")
      .replace("    call: echo\n", "    call: echo\n    next: nowhere\n");
    const error = (await baton.workflows
      .apply(broken)
      .catch((caught: unknown) => caught)) as WorkflowInvalidError;
    expect(error).toBeInstanceOf(WorkflowInvalidError);
    expect(error.problems[0]).toMatchObject({ code: "UnknownStep", line: 6 });
    // Nothing of the text was stored: the valid document went with the invalid one.
    await expect(baton.workflows.get("client-fourth")).rejects.toMatchObject({ code: "WorkflowNotFound" });
  });

  it("validates without storing", async () => {
    const text = greet.replace("client-greet", "client-validated");
    expect(await baton.workflows.validate(text)).toEqual({ valid: true, problems: [] });
    const invalid = await baton.workflows.validate("baton: v1\nname: x\nsteps: []\n");
    expect(invalid.valid).toBe(false);
    expect(invalid.problems.length).toBeGreaterThan(0);
    await expect(baton.workflows.get("client-validated")).rejects.toBeInstanceOf(BatonApiError);
  });

  it("lists and deletes", async () => {
    await baton.workflows.apply(greet.replace("client-greet", "client-deleted"));
    expect((await baton.workflows.list()).map((workflow) => workflow.name)).toContain("client-deleted");
    await baton.workflows.delete("client-deleted");
    expect((await baton.workflows.list()).map((workflow) => workflow.name)).not.toContain("client-deleted");
  });
});

describe("executions", () => {
  it("starts an execution and resolves its result", async () => {
    const run = await baton.start("client-greet", { name: "ana" });
    expect(run.id).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(run.started).toMatchObject({ id: run.id, workflow: "client-greet", revision: 1 });
    expect(await run.result({ timeout: 20_000 })).toEqual({ text: "hello, ana", sum: 5 });
    const execution = await run.get();
    expect(execution).toMatchObject({
      status: "succeeded",
      input: { name: "ana" },
      output: { text: "hello, ana", sum: 5 },
    });
    expect(execution.steps.map((step) => [step.name, step.status])).toEqual([
      ["greet", "succeeded"],
      ["sum", "succeeded"],
      ["done", "succeeded"],
    ]);
  });

  it("returns the first execution for a repeated idempotency key", async () => {
    const first = await baton.start("client-greet", { name: "kim" }, { idempotencyKey: "client-kim" });
    const second = await baton.start("client-greet", { name: "kim" }, { idempotencyKey: "client-kim" });
    expect(second.id).toBe(first.id);
    const other = await baton.start("client-greet", { name: "kim" }, { idempotencyKey: "client-kim-2" });
    expect(other.id).not.toBe(first.id);
  });

  it("waits at start when asked, and answers with the ended execution", async () => {
    const run = await baton.start("client-greet", { name: "lee" }, { wait: 20_000 });
    expect(run.started).toMatchObject({ status: "succeeded", output: { text: "hello, lee", sum: 5 } });
  });

  it("throws ExecutionFailedError with the step error when the execution fails", async () => {
    const run = await baton.start("client-fails");
    const error = (await run
      .result({ timeout: 20_000 })
      .catch((caught: unknown) => caught)) as ExecutionFailedError;
    expect(error).toBeInstanceOf(ExecutionFailedError);
    expect(error).toMatchObject({
      code: "Broken",
      status: "failed",
      error: { code: "Broken", message: "it broke" },
    });
    expect(error.execution.id).toBe(run.id);
    // outcome() gives the ended execution without throwing.
    expect(await run.outcome({ timeout: 0 })).toMatchObject({ status: "failed" });
  });

  it("throws ResultTimeoutError when the execution has not ended in time", async () => {
    const run = await baton.start("client-approval");
    const started = Date.now();
    const error = await run.result({ timeout: 400 }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ResultTimeoutError);
    expect(error).toMatchObject({ executionId: run.id, timeoutMs: 400 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(400);
    await run.cancel();
  });

  it("streams the events over a websocket until the final one, and resumes after a seq", async () => {
    const run = await baton.start("client-slow");
    const events: HistoryEvent[] = [];
    for await (const event of run.events()) events.push(event);
    expect(events.at(-1)?.type).toBe("ExecutionSucceeded");
    expect(events[0]?.type).toBe("ExecutionStarted");
    expect(events.map((event) => event.seq)).toEqual(events.map((_, index) => index + 1));
    expect(events).toContainEqual(
      expect.objectContaining({ type: "AttemptSucceeded", step: "nap", attempt: 1 }),
    );
    expect(await run.history()).toEqual(events);

    const rest: HistoryEvent[] = [];
    for await (const event of run.events({ after: 3 })) rest.push(event);
    expect(rest).toEqual(events.slice(3));
  });

  it("closes the websocket when the loop breaks", async () => {
    const run = await baton.start("client-approval");
    for await (const event of run.events()) {
      expect(event.type).toBe("ExecutionStarted");
      break;
    }
    await run.cancel();
    expect(await run.outcome({ timeout: 20_000 })).toMatchObject({ status: "cancelled" });
  });

  it("delivers a signal; refuses one to an ended execution with 409", async () => {
    const run = await baton.start("client-approval");
    await run.signal("approve", { by: "sam" });
    expect(await run.result({ timeout: 20_000 })).toEqual({ by: "sam" });
    await expect(run.signal("approve", { by: "late" })).rejects.toMatchObject({ status: 409 });
  });

  it("cancels; the result then throws with status cancelled", async () => {
    const run = await baton.start("client-approval");
    await run.cancel();
    const error = (await run
      .result({ timeout: 20_000 })
      .catch((caught: unknown) => caught)) as ExecutionFailedError;
    expect(error).toBeInstanceOf(ExecutionFailedError);
    expect(error.status).toBe("cancelled");
    await expect(run.cancel()).rejects.toMatchObject({ status: 409 });
  });

  it("retries a failed execution from the failed step; completed steps do not run again", async () => {
    const run = await baton.start("client-fails");
    await expect(run.result({ timeout: 20_000 })).rejects.toBeInstanceOf(ExecutionFailedError);
    const before = await run.history();
    await run.retry();
    // The retried execution fails again at the same step (fail-with always fails).
    const events: HistoryEvent[] = [];
    for await (const event of run.events({ after: before.length })) events.push(event);
    expect(events.at(-1)?.type).toBe("ExecutionFailed");
    expect(events.filter((event) => event.type === "AttemptStarted").map((event) => event.step)).toEqual([
      "boom",
    ]);
  });

  it("lists executions newest first, filtered, page by page", async () => {
    const ids: string[] = [];
    for (const name of ["p1", "p2", "p3"]) {
      const run = await baton.start("client-greet", { name });
      await run.result({ timeout: 20_000 });
      ids.push(run.id);
    }
    const firstPage = await baton.executions.list({
      workflow: "client-greet",
      status: "succeeded",
      limit: 2,
    });
    expect(firstPage.items.map((item) => item.id)).toEqual([ids[2], ids[1]]);
    expect(firstPage.next).toBeDefined();
    const secondPage = await baton.executions.list({
      workflow: "client-greet",
      status: "succeeded",
      limit: 2,
      cursor: firstPage.next,
    });
    expect(secondPage.items[0]?.id).toBe(ids[0]);
    expect(
      firstPage.items.every((item) => item.workflow === "client-greet" && item.status === "succeeded"),
    ).toBe(true);
    expect((await baton.executions.get(ids[0]!)).output).toEqual({ text: "hello, p1", sum: 5 });
  });
});

describe("errors", () => {
  it("WorkflowNotFound and InputInvalid carry the problem document", async () => {
    const missing = await baton.start("client-nope").catch((caught: unknown) => caught);
    expect(missing).toBeInstanceOf(BatonApiError);
    expect(missing).toMatchObject({ code: "WorkflowNotFound", status: 404 });
    expect((missing as BatonApiError).detail).toContain("client-nope");

    const invalid = (await baton
      .start("client-greet", { name: 7 })
      .catch((caught: unknown) => caught)) as BatonApiError;
    expect(invalid).toMatchObject({ code: "InputInvalid", status: 400 });
    expect(invalid.problems[0]).toMatchObject({ code: "InputInvalid", path: "/name" });
  });

  it("an unknown execution is a 404, over HTTP and over the websocket", async () => {
    const run = baton.execution("client-unknown-id");
    await expect(run.get()).rejects.toMatchObject({ code: "ExecutionNotFound", status: 404 });
    const streamed = await (async () => {
      for await (const _event of run.events()) return "an event";
      return "no error";
    })().catch((caught: unknown) => caught);
    expect(streamed).toBeInstanceOf(BatonApiError);
    expect(streamed).toMatchObject({ code: "ExecutionNotFound", status: 404 });
  });

  it("a missing or wrong token is Unauthorized; the right one works, websocket included", async () => {
    const anonymous = new BatonClient({ url: securedApi.url, token: "" });
    await expect(anonymous.workflows.list()).rejects.toMatchObject({ code: "Unauthorized", status: 401 });
    const wrong = new BatonClient({ url: securedApi.url, token: "wrong-token-0123456789" });
    await expect(wrong.executions.list()).rejects.toMatchObject({ code: "Unauthorized", status: 401 });

    const client = new BatonClient({ url: securedApi.url, token });
    const run = await client.start("client-slow");
    const types: string[] = [];
    for await (const event of run.events()) types.push(event.type);
    expect(types.at(-1)).toBe("ExecutionSucceeded");
    const denied = await (async () => {
      for await (const _event of wrong.execution(run.id).events()) return "an event";
      return "no error";
    })().catch((caught: unknown) => caught);
    expect(denied).toMatchObject({ code: "Unauthorized", status: 401 });
  });

  it("a server that is not there is a BatonConnectionError, over HTTP and over the websocket", async () => {
    const url = `http://127.0.0.1:${await closedPort()}`;
    const absent = new BatonClient({ url });
    const error = await absent.workflows.list().catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(BatonConnectionError);
    expect(error).toMatchObject({ code: "ECONNREFUSED" });
    expect((error as Error).message).toContain("connection refused");
    const streamed = await (async () => {
      for await (const _event of absent.execution("x").events()) return "an event";
      return "no error";
    })().catch((caught: unknown) => caught);
    expect(streamed).toBeInstanceOf(BatonConnectionError);
  });

  it("a server that never answers is a BatonConnectionError RequestTimeout once requestTimeout has passed", async () => {
    const silent = createServer(() => {}); // Accepts, reads nothing, answers nothing.
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = silent.address() as AddressInfo;
      const client = new BatonClient({ url: `http://127.0.0.1:${port}`, requestTimeout: 300 });
      const error = await client.workflows.list().catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(BatonConnectionError);
      expect(error).toMatchObject({ code: "RequestTimeout" });
      expect((error as Error).message).toContain("within 300 ms");
      // The caller's own abort is the caller's reason, not a connection error.
      const asked = new AbortController();
      const aborted = client
        .execution("x")
        .outcome({ signal: asked.signal })
        .catch((caught: unknown) => caught);
      asked.abort(new Error("changed my mind"));
      expect(await aborted).toMatchObject({ message: "changed my mind" });
    } finally {
      silent.close();
    }
  });

  it("a redirect (from something in front of the API) is a BatonConnectionError naming where it points", async () => {
    const redirecting = createHttpServer((_request, response) => {
      response.writeHead(301, { location: "https://baton.example/v1/workflows" }).end();
    });
    await new Promise<void>((resolve) => redirecting.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = redirecting.address() as AddressInfo;
      const error = await new BatonClient({ url: `http://127.0.0.1:${port}` }).workflows
        .list()
        .catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(BatonConnectionError);
      expect(error).toMatchObject({ code: "Redirected" });
      expect((error as Error).message).toContain("a redirect to https://baton.example/v1/workflows");
    } finally {
      redirecting.close();
    }
  });

  it("refuses a URL that is not http(s)", () => {
    expect(() => new BatonClient({ url: "nats://127.0.0.1:4222" })).toThrow(/http/);
    expect(() => new BatonClient({ url: "not a url" })).toThrow(/not a URL/);
  });
});

/** A port nothing listens on: bound, then released. */
async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}
