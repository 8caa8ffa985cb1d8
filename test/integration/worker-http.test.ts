// The built-in `http` function, served by a real worker, calling a real local HTTP server.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { http, isAllowed, parseAllowList } from "../../functions/http.ts";
import type { JsonValue, ResultEnvelope, WireError } from "../../sdk/protocol.ts";
import { serve, type WorkerHandle } from "../../sdk/index.ts";
import { createEngineDouble, type EngineDouble } from "../fixtures/worker/engine-double.ts";
import { useNatsServer } from "../helpers/nats-server.ts";

const nats = useNatsServer();
let engine: EngineDouble;
let worker: WorkerHandle;
let web: Server;
let base: string;
let closedPort: number;

beforeAll(async () => {
  web = createServer((request, response) => {
    const url = new URL(request.url ?? "/", "http://x");
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      const status = /^\/status\/(\d+)$/.exec(url.pathname);
      if (status !== null) {
        response.writeHead(Number(status[1]), { "content-type": "application/json" });
        response.end(JSON.stringify({ status: Number(status[1]) }));
      } else if (url.pathname === "/echo") {
        response.writeHead(200, { "content-type": "application/json; charset=utf-8", "x-seen": "yes" });
        response.end(
          JSON.stringify({
            method: request.method,
            contentType: request.headers["content-type"] ?? null,
            auth: request.headers.authorization ?? null,
            body: Buffer.concat(chunks).toString("utf8"),
          }),
        );
      } else if (url.pathname === "/text") {
        response.writeHead(200, { "content-type": "text/plain" });
        response.end("plain words");
      } else if (url.pathname === "/bytes") {
        response.writeHead(200, { "content-type": "application/octet-stream" });
        response.end(Buffer.from([0, 1, 2, 255]));
      } else if (url.pathname === "/redirect-in") {
        response.writeHead(303, { location: "/echo" });
        response.end();
      } else if (url.pathname === "/redirect-away") {
        response.writeHead(302, { location: `http://localhost:${(web.address() as AddressInfo).port}/echo` });
        response.end();
      } else if (url.pathname === "/hang") {
        // Never answers.
      } else {
        response.writeHead(404);
        response.end();
      }
    });
  });
  await new Promise<void>((resolve) => web.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(web.address() as AddressInfo).port}`;
  const spare = createServer();
  await new Promise<void>((resolve) => spare.listen(0, "127.0.0.1", resolve));
  closedPort = (spare.address() as AddressInfo).port;
  await new Promise((resolve) => spare.close(resolve));

  process.env.BATON_HTTP_ALLOW = "127.0.0.1"; // any port of 127.0.0.1, not "localhost"
  engine = await createEngineDouble(nats().url);
  worker = await serve({ servers: nats().url, functions: [http], logger: silent });
});

afterAll(async () => {
  await worker?.close();
  await engine?.close();
  web?.closeAllConnections();
  await new Promise((resolve) => web?.close(resolve));
});

const silent = { debug() {}, info() {}, warn() {}, error() {} };

async function call(input: JsonValue): Promise<ResultEnvelope> {
  const { envelope } = await engine.publishTask({ function: "http", input });
  return (await engine.waitForOutcome(envelope.execution)).envelope;
}

function output(result: ResultEnvelope): { status: number; headers: Record<string, string>; body: unknown } {
  expect(result.type, JSON.stringify(result)).toBe("task.succeeded");
  return (result as Extract<ResultEnvelope, { type: "task.succeeded" }>).output as never;
}

function error(result: ResultEnvelope): WireError {
  expect(result.type, JSON.stringify(result)).toBe("task.failed");
  return (result as Extract<ResultEnvelope, { type: "task.failed" }>).error;
}

describe("the http function", () => {
  it("sends method, headers and a JSON body, and parses a JSON answer", async () => {
    const result = output(
      await call({
        method: "post",
        url: `${base}/echo`,
        headers: { authorization: "Bearer t" },
        body: { a: 1 },
      }),
    );
    expect(result.status).toBe(200);
    expect(result.headers["x-seen"]).toBe("yes");
    expect(result.body).toEqual({
      method: "POST",
      contentType: "application/json",
      auth: "Bearer t",
      body: '{"a":1}',
    });
  });

  it("returns text as text and other bytes as base64", async () => {
    expect(output(await call({ url: `${base}/text` })).body).toBe("plain words");
    const bytes = output(await call({ url: `${base}/bytes` }));
    expect(bytes).toMatchObject({ body: "AAEC/w==", bodyEncoding: "base64" });
  });

  it("fails 4xx answers with HttpError, not retryable, and 5xx retryable", async () => {
    expect(error(await call({ url: `${base}/status/404` }))).toMatchObject({
      code: "HttpError",
      retryable: false,
      details: { status: 404, body: { status: 404 } },
    });
    expect(error(await call({ url: `${base}/status/503` }))).toMatchObject({
      code: "HttpError",
      retryable: true,
    });
  });

  it("fails a connection that is refused with NetworkError, retryable", async () => {
    const failure = error(await call({ url: `http://127.0.0.1:${closedPort}/` }));
    expect(failure).toMatchObject({ code: "NetworkError", retryable: true });
    expect(failure.message).toMatch(/ECONNREFUSED/);
  });

  it("fails with Timeout when the answer does not come within `timeout`", async () => {
    expect(error(await call({ url: `${base}/hang`, timeout: 300 }))).toMatchObject({
      code: "Timeout",
      retryable: true,
    });
  });

  it("follows redirects on allowed hosts, and refuses one to a host not allowed", async () => {
    const followed = output(await call({ method: "POST", url: `${base}/redirect-in`, body: "x" }));
    expect(followed.body).toMatchObject({ method: "GET", body: "" });
    expect(error(await call({ url: `${base}/redirect-away` }))).toMatchObject({
      code: "HostNotAllowed",
      retryable: false,
    });
  });

  it("checks its input: a URL that is not http(s) is refused", async () => {
    expect(error(await call({ url: "file:///etc/passwd" }))).toMatchObject({
      code: "InputInvalid",
      retryable: false,
    });
    expect(error(await call({ url: `${base}/echo`, bogus: 1 }))).toMatchObject({ code: "InputInvalid" });
  });
});

describe("the allow-list", () => {
  const url = (text: string) => new URL(text);

  it("refuses everything when empty, and allows anything with *", () => {
    expect(isAllowed(url("https://example.com/"), parseAllowList(undefined))).toBe(false);
    expect(isAllowed(url("https://example.com/"), parseAllowList(" "))).toBe(false);
    expect(isAllowed(url("https://example.com:8443/"), parseAllowList("a.org, *"))).toBe(true);
  });

  it("matches hosts, ports (with the scheme's default) and subdomain wildcards", () => {
    const allow = parseAllowList("api.example.com:443, Internal.Local, *.svc.cluster, [::1]:8080");
    expect(isAllowed(url("https://api.example.com/x"), allow)).toBe(true);
    expect(isAllowed(url("http://api.example.com/x"), allow)).toBe(false);
    expect(isAllowed(url("http://internal.local:9999/"), allow)).toBe(true);
    expect(isAllowed(url("http://fn.default.svc.cluster/"), allow)).toBe(true);
    expect(isAllowed(url("http://svc.cluster.evil.com/"), allow)).toBe(false);
    expect(isAllowed(url("http://[::1]:8080/"), allow)).toBe(true);
    expect(isAllowed(url("http://[::1]:8081/"), allow)).toBe(false);
  });
});
