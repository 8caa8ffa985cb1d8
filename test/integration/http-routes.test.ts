/**
 * Workflows' own HTTP routes (`http` triggers), execution links with scoped access tokens, CORS,
 * and the websocket's Origin and Host checks, in-process (`inject()`, and `injectWS` for the
 * websocket), against a real nats-server, a real engine and a protocol-level worker.
 */
import type { FastifyInstance, InjectOptions } from "fastify";
import { connect, type NatsConnection } from "nats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { WebSocket } from "ws";
import { AccessTokens } from "../../engine/api/access-tokens.ts";
import { buildServer } from "../../engine/api/server.ts";
import { loadApiConfig, loadEngineConfig, ConfigError } from "../../engine/config.ts";
import { Executions } from "../../engine/orchestrator/executions.ts";
import { Orchestrator } from "../../engine/orchestrator/orchestrator.ts";
import { triggerStream } from "../../engine/triggers/trigger-event.ts";
import { useNatsServer } from "../helpers/nats-server.ts";
import { ScriptedFailure, serveScripted, type ScriptedWorker } from "../helpers/scripted-worker.ts";
import { testLogger } from "../helpers/test-logger.ts";

const server = useNatsServer();
const token = "http-routes-token-0123456789";
const auth = { authorization: `Bearer ${token}` };
const allowedOrigin = "http://pages.example.test:5173";

let nc: NatsConnection;
let engine: Orchestrator;
let executions: Executions;
let app: FastifyInstance;
let worker: ScriptedWorker;
let release: () => void = () => undefined;

const workflows: Record<string, string> = {
  train: `baton: v1
name: train
input: { type: object, required: [epochs], properties: { epochs: { type: integer, maximum: 100 } } }
triggers:
  - http:
      path: /train
      input: \${ $event.data.body }
steps:
  - { name: fit, call: echo }
`,
  "echo-sync": `baton: v1
name: echo-sync
triggers:
  - http:
      path: /echo
      method: PUT
      respond: sync
      timeout: 20s
      auth: token
      input: "\${ { 'q': $event.data.query.q, 'who': $event.data.headers.'x-who', 'body': $event.data.body, 'method': $event.data.method } }"
steps:
  - { name: say, call: echo }
`,
  "fail-sync": `baton: v1
name: fail-sync
triggers:
  - http: { path: /broken, respond: sync }
steps:
  - { name: explode, call: explode }
`,
  "slow-sync": `baton: v1
name: slow-sync
triggers:
  - http: { path: /slow, respond: sync, timeout: 200ms }
steps:
  - { name: hold, call: hold }
`,
  limited: `baton: v1
name: limited
triggers:
  - http: { path: /limited, rate: 2/h }
steps:
  - { name: say, call: echo }
`,
};

beforeAll(async () => {
  nc = await connect({ servers: server().url });
  engine = await Orchestrator.create(
    nc,
    { ...loadEngineConfig({ NATS_URL: server().url }), retentionMs: 60_000 },
    testLogger,
  );
  await engine.start();
  executions = await Executions.connect(nc);
  const held = new Promise<void>((resolve) => (release = resolve));
  worker = await serveScripted(nc, {
    echo: (input) => input,
    explode: () => {
      throw new ScriptedFailure({ code: "ModelDiverged", message: "loss is NaN", retryable: false });
    },
    hold: async () => {
      await held;
      return "done";
    },
  });
  app = await buildServer({
    executions,
    config: { tokens: [token], corsOrigins: [allowedOrigin], accessTtlMs: 60_000 },
  });
  await app.ready();
  for (const [name, yaml] of Object.entries(workflows)) {
    const response = await call("PUT", `/v1/workflows/${name}`, { yaml, headers: auth });
    expect(response.statusCode, response.body).toBeLessThan(300);
  }
});

afterAll(async () => {
  await app?.close();
  worker?.stop();
  await engine?.stop();
  await nc?.close();
});

interface CallOptions {
  body?: unknown;
  yaml?: string;
  headers?: Record<string, string>;
  target?: FastifyInstance;
}

function call(method: InjectOptions["method"], url: string, options: CallOptions = {}) {
  const headers: Record<string, string> = { ...options.headers };
  let payload: string | undefined;
  if (options.yaml !== undefined) {
    headers["content-type"] ??= "application/yaml";
    payload = options.yaml;
  } else if (options.body !== undefined) {
    headers["content-type"] ??= "application/json";
    payload = typeof options.body === "string" ? options.body : JSON.stringify(options.body);
  }
  return (options.target ?? app).inject({
    method,
    url,
    headers,
    ...(payload === undefined ? {} : { payload }),
  });
}

function expectProblem(response: { statusCode: number; json: () => unknown; body: string }, code: string) {
  const problem = response.json() as { code: string; status: number };
  expect(problem.code, response.body).toBe(code);
  expect(response.statusCode, response.body).toBe(problem.status);
  return problem as {
    code: string;
    status: number;
    detail: string;
    errors?: { code: string; path: string }[];
  };
}

interface Accepted {
  id: string;
  status: string;
  links: { execution: string; result: string; events: string };
}

const triggerEventCount = async () =>
  (await (await nc.jetstreamManager()).streams.info(triggerStream)).state.messages;

describe("http routes", () => {
  it("answers 202 with Location and links, without a token, and the links read the execution", async () => {
    const response = await call("POST", "/train", { body: { epochs: 3 } });
    expect(response.statusCode, response.body).toBe(202);
    const accepted = response.json<Accepted>();
    expect(response.headers.location).toBe(`/v1/executions/${accepted.id}`);
    expect(accepted.links.execution).toBe(`/v1/executions/${accepted.id}`);
    expect(accepted.links.result).toMatch(
      new RegExp(`^/v1/executions/${accepted.id}/result\\?access_token=`),
    );
    expect(accepted.links.events).toMatch(
      new RegExp(`^/v1/executions/${accepted.id}/events\\?access_token=`),
    );
    // The result link alone (no bearer token) reads the execution to its end.
    const result = await call("GET", `${accepted.links.result}&wait=10s`);
    expect(result.statusCode, result.body).toBe(200);
    expect(result.json()).toMatchObject({ id: accepted.id, status: "succeeded", output: { epochs: 3 } });
    const execution = await call("GET", `${accepted.links.execution}?${accepted.links.result.split("?")[1]}`);
    expect(execution.statusCode, execution.body).toBe(200);
    // Started through the trigger plane: the delivery is recorded with the execution.
    const history = await call("GET", `/v1/executions/${accepted.id}/history`, { headers: auth });
    expect(history.json<{ items: { type: string }[] }>().items[0]!.type).toBe("ExecutionStarted");
  });

  it("streams the execution's events over the websocket with the link's access token", async () => {
    const accepted = (await call("POST", "/train", { body: { epochs: 1 } })).json<Accepted>();
    const messages: { type: string }[] = [];
    let closed!: (code: number) => void;
    const end = new Promise<number>((resolve) => (closed = resolve));
    await app.injectWS(
      accepted.links.events,
      { headers: { origin: allowedOrigin } },
      {
        onInit: (ws: WebSocket) => {
          ws.on("message", (data: Buffer) =>
            messages.push(JSON.parse(data.toString("utf8")) as { type: string }),
          );
          ws.on("close", (code) => closed(code));
        },
      },
    );
    expect(await end).toBe(1000);
    expect(messages.at(-1)!.type).toBe("ExecutionSucceeded");
  });

  it("checks the input schema before anything is stored: 400, no trigger event, no execution", async () => {
    const before = await triggerEventCount();
    const listed = async () =>
      (await call("GET", "/v1/executions?workflow=train&limit=500", { headers: auth })).json<{
        items: unknown[];
      }>().items.length;
    const executionsBefore = await listed();
    const problem = expectProblem(await call("POST", "/train", { body: { epochs: 1000 } }), "InputInvalid");
    expect(problem.errors?.[0]?.path).toBe("/epochs");
    expectProblem(await call("POST", "/train", { body: { wrong: true } }), "InputInvalid");
    expect(await triggerEventCount()).toBe(before);
    expect(await listed()).toBe(executionsBefore);
  });

  it("sync: 200 with the output, built from method, query, headers and body", async () => {
    const response = await call("PUT", "/echo?q=42", { body: { a: 1 }, headers: { ...auth, "x-who": "me" } });
    expect(response.statusCode, response.body).toBe(200);
    expect(response.json()).toEqual({ q: "42", who: "me", body: { a: 1 }, method: "PUT" });
  });

  it("takes forms and text as well as JSON", async () => {
    const form = await call("PUT", "/echo", {
      body: "a=1&b=two",
      headers: { ...auth, "content-type": "application/x-www-form-urlencoded" },
    });
    expect(form.statusCode, form.body).toBe(200);
    expect(form.json<{ body: unknown }>().body).toEqual({ a: "1", b: "two" });
    const text = await call("PUT", "/echo", {
      body: "hello",
      headers: { ...auth, "content-type": "text/plain" },
    });
    expect(text.json<{ body: unknown }>().body).toBe("hello");
  });

  it("auth: token routes want the API's bearer token (401), and never see it in $event", async () => {
    const refused = await call("PUT", "/echo", { body: {} });
    expectProblem(refused, "Unauthorized");
    expect(refused.headers["www-authenticate"]).toBe('Bearer realm="baton"');
    const echoed = await call("PUT", "/echo", { body: {}, headers: auth });
    expect(JSON.stringify(echoed.json())).not.toContain(token);
  });

  it("sync: a failed execution is a 502 problem carrying the step's error code", async () => {
    const problem = expectProblem(await call("POST", "/broken", { body: {} }), "RouteExecutionFailed");
    expect(problem.status).toBe(502);
    expect(problem.errors?.[0]?.code).toBe("ModelDiverged");
  });

  it("sync: past its timeout the route answers 202 with links", async () => {
    const response = await call("POST", "/slow", { body: {} });
    expect(response.statusCode, response.body).toBe(202);
    const accepted = response.json<Accepted>();
    expect(accepted.status).toBe("running");
    expect(accepted.links.result).toContain("access_token=");
    release();
    expect((await call("GET", `${accepted.links.result}&wait=10s`)).json()).toMatchObject({
      status: "succeeded",
    });
  });

  it("limits each route to its rate: 429 with Retry-After, while other routes go on", async () => {
    expect((await call("POST", "/limited", { body: {} })).statusCode).toBe(202);
    expect((await call("POST", "/limited", { body: {} })).statusCode).toBe(202);
    const limited = await call("POST", "/limited", { body: {} });
    expectProblem(limited, "TooManyRequests");
    expect(Number(limited.headers["retry-after"])).toBeGreaterThan(0);
    expect((await call("POST", "/train", { body: { epochs: 1 } })).statusCode).toBe(202);
  });

  it("bounds the body (413), refuses other media types (415) and other methods (404)", async () => {
    const big = { blob: "x".repeat(600 * 1024) };
    expectProblem(await call("POST", "/train", { body: big }), "BodyTooLarge");
    expectProblem(
      await call("POST", "/train", { body: "<x/>", headers: { "content-type": "application/xml" } }),
      "UnsupportedMediaType",
    );
    expectProblem(await call("GET", "/train", { headers: auth }), "RouteNotFound");
  });

  it("unknown paths: 401 without a token, 404 with one", async () => {
    expectProblem(await call("POST", "/nothing-here", { body: {} }), "Unauthorized");
    expectProblem(await call("POST", "/nothing-here", { body: {}, headers: auth }), "RouteNotFound");
    expectProblem(await call("GET", "/v1/nothing", { headers: auth }), "RouteNotFound");
  });

  it("refuses a second workflow claiming the same method and path: 409 RouteConflict naming the holder", async () => {
    const yaml = `baton: v1
name: thief
triggers:
  - http: { path: /train, method: POST }
steps:
  - { name: s, call: echo }
`;
    const problem = expectProblem(
      await call("PUT", "/v1/workflows/thief", { yaml, headers: auth }),
      "RouteConflict",
    );
    expect(problem.detail).toContain('"train"');
    expectProblem(await call("GET", "/v1/workflows/thief", { headers: auth }), "WorkflowNotFound");
    // Another method on the same path is another route; the holder may resubmit itself.
    const other = yaml.replace("method: POST", "method: DELETE");
    expect((await call("PUT", "/v1/workflows/thief", { yaml: other, headers: auth })).statusCode).toBe(201);
    expect(
      (await call("PUT", "/v1/workflows/train", { yaml: workflows.train!, headers: auth })).statusCode,
    ).toBe(200);
  });

  it("refuses reserved and malformed paths with line and column", async () => {
    const yaml = `baton: v1
name: reserved
triggers:
  - http: { path: /v1/train }
steps:
  - { name: s, call: echo }
`;
    const problem = expectProblem(
      await call("PUT", "/v1/workflows/reserved", { yaml, headers: auth }),
      "WorkflowInvalid",
    );
    expect(problem.errors).toEqual([
      expect.objectContaining({ code: "InvalidRoute", path: "triggers[0].http.path", line: 4, column: 19 }),
    ]);
  });
});

describe("execution links and access tokens", () => {
  it("POST /v1/workflows/{name}/executions answers with the same links", async () => {
    const response = await call("POST", "/v1/workflows/train/executions", {
      body: { epochs: 2 },
      headers: auth,
    });
    expect(response.statusCode).toBe(202);
    const accepted = response.json<Accepted>();
    const result = await call("GET", `${accepted.links.result}&wait=10s`);
    expect(result.json()).toMatchObject({ status: "succeeded" });
  });

  it("a token reads its own execution only: 403 anywhere else, expired or forged", async () => {
    const first = (await call("POST", "/train", { body: { epochs: 1 } })).json<Accepted>();
    const second = (await call("POST", "/train", { body: { epochs: 1 } })).json<Accepted>();
    const query = first.links.result.split("?")[1]!;
    const tokenOf = new URLSearchParams(query).get("access_token")!;
    expectProblem(await call("GET", `/v1/executions/${second.id}?${query}`), "Forbidden");
    expectProblem(await call("GET", `/v1/executions/${first.id}/history?${query}`), "Forbidden");
    expectProblem(await call("POST", `/v1/executions/${first.id}/cancel?${query}`), "Forbidden");
    expectProblem(await call("GET", `/v1/workflows?${query}`), "Forbidden");
    expectProblem(await call("GET", `/v1/executions?${query}`), "Forbidden");
    // As a bearer token, the same rules.
    expectProblem(
      await call("GET", `/v1/executions/${second.id}`, { headers: { authorization: `Bearer ${tokenOf}` } }),
      "Forbidden",
    );
    expect(
      (await call("GET", `/v1/executions/${first.id}`, { headers: { authorization: `Bearer ${tokenOf}` } }))
        .statusCode,
    ).toBe(200);
    // Expired: issued by the same key a TTL and more ago.
    const tokens = await AccessTokens.open(nc, { ttlMs: 60_000 });
    const expired = await tokens.issue(first.id, Date.now() - 120_000);
    expectProblem(await call("GET", `/v1/executions/${first.id}?access_token=${expired}`), "Forbidden");
    const fresh = await tokens.issue(first.id);
    expect((await call("GET", `/v1/executions/${first.id}?access_token=${fresh}`)).statusCode).toBe(200);
    // Forged: signed with another key.
    const other = await AccessTokens.open(nc, { ttlMs: 60_000, signingKey: "k".repeat(40) });
    expectProblem(
      await call("GET", `/v1/executions/${first.id}?access_token=${await other.issue(first.id)}`),
      "Forbidden",
    );
  });

  it("the signing key lives in JetStream: another API process accepts the tokens this one gave", async () => {
    const accepted = (await call("POST", "/train", { body: { epochs: 1 } })).json<Accepted>();
    const replica = await buildServer({ executions, config: { tokens: [token] } });
    try {
      const response = await call("GET", `${accepted.links.result}&wait=10s`, { target: replica });
      expect(response.statusCode, response.body).toBe(200);
    } finally {
      await replica.close();
    }
  });

  it("BATON_API_SIGNING_KEY overrides the shared key", async () => {
    const accepted = (await call("POST", "/train", { body: { epochs: 1 } })).json<Accepted>();
    const replica = await buildServer({
      executions,
      config: { tokens: [token], signingKey: "s".repeat(40) },
    });
    try {
      expectProblem(
        await call("GET", accepted.links.execution + "?" + accepted.links.result.split("?")[1], {
          target: replica,
        }),
        "Forbidden",
      );
    } finally {
      await replica.close();
    }
    expect(loadApiConfig({ BATON_API_SIGNING_KEY: "s".repeat(40) }).signingKey).toBe("s".repeat(40));
    expect(() => loadApiConfig({ BATON_API_SIGNING_KEY: "short" })).toThrow(ConfigError);
    expect(loadApiConfig({}).accessTtlMs).toBe(24 * 60 * 60_000);
    expect(loadApiConfig({ BATON_API_ACCESS_TTL: "1h" }).accessTtlMs).toBe(60 * 60_000);
  });
});

describe("browsers: CORS, websocket Origin, Host", () => {
  const preflight = (origin: string) =>
    app.inject({
      method: "OPTIONS",
      url: "/train",
      headers: {
        origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type",
      },
    });

  it("answers a preflight from an allowed origin, and exposes Location on the answer", async () => {
    const response = await preflight(allowedOrigin);
    expect(response.statusCode).toBe(204);
    expect(response.headers["access-control-allow-origin"]).toBe(allowedOrigin);
    expect(String(response.headers["access-control-allow-methods"])).toContain("POST");
    const posted = await call("POST", "/train", { body: { epochs: 1 }, headers: { origin: allowedOrigin } });
    expect(posted.headers["access-control-allow-origin"]).toBe(allowedOrigin);
    expect(String(posted.headers["access-control-expose-headers"])).toContain("location");
  });

  it("gives no CORS header to any other origin, preflight or not", async () => {
    const response = await preflight("http://evil.example.test");
    expect(response.headers["access-control-allow-origin"]).toBeUndefined();
    const posted = await call("POST", "/train", {
      body: { epochs: 1 },
      headers: { origin: "http://evil.example.test" },
    });
    expect(posted.headers["access-control-allow-origin"]).toBeUndefined();
    expect(loadApiConfig({}).corsOrigins).toEqual([]);
    expect(() => loadApiConfig({ BATON_API_CORS_ORIGINS: "https://a.example/path" })).toThrow(ConfigError);
  });

  it("refuses a websocket from an origin that is neither allowed nor the API's own", async () => {
    const accepted = (await call("POST", "/train", { body: { epochs: 1 } })).json<Accepted>();
    const refused = await app.inject({
      method: "GET",
      url: accepted.links.events,
      headers: { origin: "http://evil.example.test", upgrade: "websocket", connection: "upgrade" },
    });
    expectProblem(refused, "Forbidden");
    // The API's own origin (the console) is allowed.
    let opened = false;
    await app.injectWS(
      accepted.links.events,
      { headers: { origin: "http://localhost:80", host: "localhost:80" } },
      { onInit: () => (opened = true) },
    );
    expect(opened).toBe(true);
  });

  it("without tokens, answers only requests addressed to a loopback host", async () => {
    const open = await buildServer({ executions });
    try {
      expectProblem(
        await open.inject({
          method: "GET",
          url: "/v1/workflows",
          headers: { host: "rebound.example.test:8080" },
        }),
        "Forbidden",
      );
      const upgrade = await open.inject({
        method: "GET",
        url: "/v1/executions/xnone/events",
        headers: {
          host: "rebound.example.test:8080",
          origin: "http://rebound.example.test:8080",
          upgrade: "websocket",
          connection: "upgrade",
        },
      });
      expectProblem(upgrade, "Forbidden");
      for (const host of ["localhost:8080", "127.0.0.1:8080", "[::1]:8080"])
        expect(
          (await open.inject({ method: "GET", url: "/v1/workflows", headers: { host } })).statusCode,
          host,
        ).toBe(200);
    } finally {
      await open.close();
    }
  });
});

describe("what the console uses", () => {
  it("serves /ui and its script without a token, and no data with them", async () => {
    const page = await call("GET", "/ui");
    expect(page.statusCode).toBe(200);
    expect(page.headers["content-type"]).toContain("text/html");
    expect(page.body).toContain('<script type="module" src="/ui/app.js">');
    const script = await call("GET", "/ui/app.js");
    expect(script.statusCode).toBe(200);
    expect(script.headers["content-type"]).toContain("javascript");
    expect(script.body.length).toBeGreaterThan(10_000);
    expect(page.body).not.toContain("/v1/executions/x");
  });

  it("GET /v1/executions/{id}/links: fresh links for an API token, 401 without, 403 with an access token, 404 unknown", async () => {
    const accepted = (await call("POST", "/train", { body: { epochs: 1 } })).json<Accepted>();
    const links = await call("GET", `/v1/executions/${accepted.id}/links`, { headers: auth });
    expect(links.statusCode).toBe(200);
    const fresh = links.json<Accepted["links"]>();
    expect(fresh.execution).toBe(`/v1/executions/${accepted.id}`);
    expect((await call("GET", `${fresh.result}&wait=10s`)).statusCode).toBe(200);
    expectProblem(await call("GET", `/v1/executions/${accepted.id}/links`), "Unauthorized");
    expectProblem(
      await call("GET", `/v1/executions/${accepted.id}/links?${accepted.links.result.split("?")[1]}`),
      "Forbidden",
    );
    expectProblem(await call("GET", "/v1/executions/xnothing/links", { headers: auth }), "ExecutionNotFound");
  });

  it("GET /v1/deliveries: the latest deliveries, newest first, by source", async () => {
    const accepted = (await call("POST", "/train", { body: { epochs: 1 } })).json<Accepted>();
    const list = await call("GET", "/v1/deliveries?source=http&limit=200", { headers: auth });
    expect(list.statusCode).toBe(200);
    const items = list.json<{
      items: { source: string; receivedAt: string; executions: { execution: string }[] }[];
    }>().items;
    expect(items.every((item) => item.source === "http")).toBe(true);
    expect(items.some((item) => item.executions.some((started) => started.execution === accepted.id))).toBe(
      true,
    );
    const times = items.map((item) => item.receivedAt);
    expect(times).toEqual([...times].sort().reverse());
    expect((await call("GET", "/v1/deliveries?source=github", { headers: auth })).json()).toEqual({
      items: [],
    });
    expectProblem(await call("GET", "/v1/deliveries?source=nope", { headers: auth }), "RequestInvalid");
    expectProblem(await call("GET", "/v1/deliveries"), "Unauthorized");
  });
});
