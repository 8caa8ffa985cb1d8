/**
 * The API against hostile input: malformed JSON and YAML, huge bodies, odd Unicode in names and
 * ids, malformed URLs and request lines. Nothing may crash, nothing may be half-created, and
 * every refusal must be a clear 4xx problem document. Random cases come from a seeded generator
 * (`BATON_FUZZ_SEED` to replay another run), so a failure can be reproduced.
 */
import type { AddressInfo } from "node:net";
import { connect as connectTcp } from "node:net";
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from "fastify";
import { connect, type NatsConnection } from "nats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildServer } from "../../engine/api/server.ts";
import { loadEngineConfig } from "../../engine/config.ts";
import { Executions } from "../../engine/orchestrator/executions.ts";
import { Orchestrator } from "../../engine/orchestrator/orchestrator.ts";
import { buckets } from "../../sdk/protocol.ts";
import { useNatsServer } from "../helpers/nats-server.ts";
import { testLogger } from "../helpers/test-logger.ts";

const server = useNatsServer();
const token = "fuzz-token-0123456789abcdef";
const auth = { authorization: `Bearer ${token}` };
const seed = Number(process.env.BATON_FUZZ_SEED ?? 20_261_126);

let nc: NatsConnection;
let engine: Orchestrator;
let executions: Executions;
let app: FastifyInstance;
let address: AddressInfo;

const echoWorkflow = `baton: v1
name: fuzzed
steps:
  - { name: give-back, return: "\${ $input }" }
`;

beforeAll(async () => {
  nc = await connect({ servers: server().url });
  engine = await Orchestrator.create(nc, loadEngineConfig({ NATS_URL: server().url }), testLogger);
  await engine.start();
  executions = await Executions.connect(nc);
  app = await buildServer({
    executions,
    config: { tokens: [token], bodyLimit: 256 * 1024, workflowLimit: 64 * 1024, inputLimit: 32 * 1024 },
  });
  await app.listen({ host: "127.0.0.1", port: 0 });
  address = app.server.address() as AddressInfo;
  const created = await send({ method: "PUT", url: "/v1/workflows/fuzzed", yaml: echoWorkflow });
  expect(created.statusCode).toBe(201);
});

afterAll(async () => {
  await app?.close();
  await engine?.stop();
  await nc?.close();
});

interface Request {
  method: InjectOptions["method"];
  url: string;
  yaml?: string;
  json?: string | Buffer;
  contentType?: string;
  headers?: Record<string, string>;
}

function send(request: Request): Promise<LightMyRequestResponse> {
  const headers: Record<string, string> = { ...auth, ...request.headers };
  const payload = request.yaml ?? request.json;
  if (payload !== undefined)
    headers["content-type"] =
      request.contentType ?? (request.yaml !== undefined ? "application/yaml" : "application/json");
  return app.inject({
    method: request.method,
    url: request.url,
    headers,
    ...(payload === undefined ? {} : { payload }),
  });
}

/** A 2xx, or a 4xx problem document with a code, a title and a detail; never a 5xx, never a stack. */
function expectClearAnswer(response: LightMyRequestResponse, what: string): void {
  const label = `${what} → ${response.statusCode} ${response.body.slice(0, 300)}`;
  expect(response.statusCode, label).toBeLessThan(500);
  expect(response.body, label).not.toMatch(/\n\s+at .+:\d+:\d+/);
  if (response.statusCode < 400) return;
  expect(response.headers["content-type"], label).toMatch(/^application\/problem\+json/);
  const problem = response.json<{
    status: number;
    code: string;
    title: string;
    detail: string;
    type: string;
  }>();
  expect(problem.status, label).toBe(response.statusCode);
  expect(problem.code, label).toMatch(/^[A-Z][A-Za-z]+$/);
  expect(problem.type, label).toBe(`urn:baton:error:${problem.code}`);
  expect(problem.detail.length, label).toBeGreaterThan(0);
}

/** Must be refused, clearly. */
function expectRefused(response: LightMyRequestResponse, what: string): void {
  expectClearAnswer(response, what);
  expect(response.statusCode, `${what}: should be refused`).toBeGreaterThanOrEqual(400);
}

/** Like encodeURIComponent, for lone surrogates too (as the UTF-8 bytes a careless client would send). */
function encodePath(text: string): string {
  try {
    return encodeURIComponent(text);
  } catch {
    return "%ED%A0%80";
  }
}

/** mulberry32: small, seeded, good enough to pick mutations. */
function random(seedValue: number): () => number {
  let state = seedValue >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

const oddStrings = [
  "\u0000",
  "a\u0000b",
  "\u202Eevil",
  "name\u200F",
  "\u200B",
  "💥",
  "𝔟𝔞𝔱𝔬𝔫",
  "\uFEFFbom",
  "\uD800",
  "e\u0301",
  "..",
  "../../etc/passwd",
  "a.b",
  "*",
  ">",
  "a b",
  "%",
  "x".repeat(10_000),
  "ß".repeat(3_000),
  "${ $input }",
  "<script>alert(1)</script>",
  "'; DROP TABLE workflows; --",
];

const malformedJson = [
  "{",
  "}",
  "[1,2",
  '{"a":}',
  '{"a" 1}',
  "{'single': 1}",
  "NaN",
  "undefined",
  '{"a":1,}',
  "\u0000",
  '"unterminated',
  "01",
  "1e99999",
  '{"__proto__": {"polluted": true}}',
  '{"constructor": {"prototype": {"polluted": true}}}',
  "[".repeat(100_000),
  `${"[".repeat(200)}${"]".repeat(200)}`,
  `{"a":${'{"a":'.repeat(150)}1${"}".repeat(150)}}`,
  "{}garbage",
  "\xff\xfe\xfd",
];

describe("malformed JSON", () => {
  const targets = [
    "/v1/workflows/fuzzed/executions",
    "/v1/executions/xnothing/signals/go",
    "/v1/events",
    "/v1/workflows/fuzzed",
    "/v1/workflows:validate",
  ];

  it.each(targets)("refuses every malformed body sent to %s, creating nothing", async (url) => {
    const method = url === "/v1/workflows/fuzzed" ? "PUT" : "POST";
    for (const body of malformedJson) {
      const response = await send({ method, url, json: body });
      expectRefused(response, `${method} ${url} ${JSON.stringify(body.slice(0, 40))}`);
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it("refuses invalid UTF-8 and odd content types", async () => {
    const bytes = Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xc3, 0x28, 0x22, 0x7d]);
    expectClearAnswer(
      await send({ method: "POST", url: "/v1/workflows/fuzzed/executions", json: bytes }),
      "invalid UTF-8",
    );
    for (const contentType of [
      "text/plain",
      "multipart/form-data; boundary=x",
      "application/xml",
      "application/x-www-form-urlencoded",
      "application/jsonx",
      "*/*",
      ";;;",
    ]) {
      expectRefused(
        await send({ method: "POST", url: "/v1/workflows/fuzzed/executions", json: "{}", contentType }),
        `content-type ${contentType}`,
      );
    }
  });
});

describe("malformed YAML", () => {
  const aliasBomb = [
    "baton: v1",
    "name: bomb",
    'a: &a ["x","x","x","x","x","x","x","x","x","x"]',
    "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]",
    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]",
    "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]",
    "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]",
    "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]",
    "steps: *f",
  ].join("\n");
  const documents = [
    "",
    "   ",
    "---",
    "--- !!binary |\n  AAAA",
    "\t- tab indented",
    "baton: v1\nname: fuzzed\nsteps:\n  - { name: a, return: 1\n",
    "baton: v1\nname: 'unterminated\n",
    "baton: v1\nname: fuzzed\n  bad: indentation\n",
    "key: value\nkey: duplicate\n",
    "- a list\n- not a mapping\n",
    "!!python/object:os.system ['rm -rf /']",
    "baton: v1\nname: !!js/function 'function(){}'\nsteps: []\n",
    aliasBomb,
    `baton: v1\nname: deep\nsteps: ${"[".repeat(5_000)}${"]".repeat(5_000)}\n`,
    `baton: v1\nname: deep\nsteps: ${"{a: ".repeat(2_000)}1${"}".repeat(2_000)}\n`,
    `${"a:\n".repeat(2_000)}`,
    "baton: v1\nname: fuzzed\nsteps:\n" + "  - { name: s, return: 1 }\n".repeat(2_000),
    "\u0000\u0001\u0002",
    "baton: v1\u0000\nname: fuzzed\n",
    "\uFEFFbaton: v1\nname: other\nsteps: []\n",
    "%YAML 9.9\n---\nbaton: v1\n",
    "baton: v1\nname: fuzzed\nsteps:\n  - &x { name: a, next: *x }\n",
  ];

  it("refuses every malformed document with a clear 4xx, and stores none", async () => {
    for (const yaml of documents) {
      for (const url of ["/v1/workflows/fuzzed", "/v1/workflows:validate"]) {
        const response = await send({ method: url.endsWith("validate") ? "POST" : "PUT", url, yaml });
        expectRefused(response, `${url} ${JSON.stringify(yaml.slice(0, 60))}`);
      }
    }
    await expectOnlyWorkflows(["fuzzed"]);
    const fuzzed = await send({ method: "GET", url: "/v1/workflows/fuzzed" });
    expect(fuzzed.json<{ revision: number; source: string }>()).toMatchObject({
      revision: 1,
      source: echoWorkflow,
    });
  });

  it("answers random mutations of a valid document clearly; what it stores is valid", async () => {
    const next = random(seed);
    const alphabet = [
      "{",
      "}",
      "[",
      "]",
      ":",
      "-",
      " ",
      "\n",
      "\t",
      "'",
      '"',
      "&",
      "*",
      "!",
      "#",
      "$",
      "\u0000",
      "\u202E",
      "💥",
      "a",
      "0",
    ];
    for (let round = 0; round < 300; round++) {
      let text = echoWorkflow;
      const edits = 1 + Math.floor(next() * 4);
      for (let edit = 0; edit < edits; edit++) {
        const at = Math.floor(next() * text.length);
        const kind = next();
        const char = alphabet[Math.floor(next() * alphabet.length)]!;
        if (kind < 0.33) text = text.slice(0, at) + text.slice(at + 1);
        else if (kind < 0.66) text = text.slice(0, at) + char + text.slice(at);
        else text = text.slice(0, at) + char + text.slice(at + 1);
      }
      const response = await send({ method: "PUT", url: "/v1/workflows/fuzzed", yaml: text });
      expectClearAnswer(response, `seed ${seed} round ${round}: ${JSON.stringify(text)}`);
    }
    // Whatever was stored under the name is a valid workflow of that name.
    const current = (await send({ method: "GET", url: "/v1/workflows/fuzzed" })).json<{ source: string }>();
    expect(executions.validate(current.source)).toEqual([]);
    await expectOnlyWorkflows(["fuzzed"]);
    // Put the original back for the tests that follow.
    await send({ method: "PUT", url: "/v1/workflows/fuzzed", yaml: echoWorkflow });
  });
});

describe("huge bodies", () => {
  it("refuses bodies over the limit with 413, on every route that takes one, and starts nothing", async () => {
    const before = await topLevelExecutions();
    const huge = JSON.stringify({ blob: "x".repeat(300 * 1024) });
    for (const [method, url] of [
      ["POST", "/v1/workflows/fuzzed/executions"],
      ["POST", "/v1/executions/xnothing/signals/go"],
      ["POST", "/v1/events"],
      ["PUT", "/v1/workflows/fuzzed"],
      ["POST", "/v1/workflows:validate"],
    ] as const) {
      const response = await send({ method, url, json: huge });
      expectRefused(response, `${method} ${url} huge`);
      expect(response.statusCode).toBe(413);
    }
    const tooBigYaml = `baton: v1\nname: fuzzed\ndescription: "${"y".repeat(100 * 1024)}"\nsteps: []\n`;
    expect((await send({ method: "PUT", url: "/v1/workflows/fuzzed", yaml: tooBigYaml })).statusCode).toBe(
      413,
    );
    expect(
      (
        await send({
          method: "POST",
          url: "/v1/workflows/fuzzed/executions",
          json: JSON.stringify({ blob: "z".repeat(40 * 1024) }),
        })
      ).statusCode,
    ).toBe(413);
    expect(await topLevelExecutions()).toEqual(before);
  });

  it("refuses a Content-Length that lies", async () => {
    const response = await app.inject({
      method: "POST",
      url: "/v1/workflows/fuzzed/executions",
      headers: { ...auth, "content-type": "application/json", "content-length": "10" },
      payload: '{"a": "much longer than ten bytes"}',
    });
    expectClearAnswer(response, "lying content-length");
  });
});

describe("odd names and ids", () => {
  const executionRoutes = (id: string): [InjectOptions["method"], string][] => [
    ["GET", `/v1/executions/${id}`],
    ["GET", `/v1/executions/${id}/result?wait=10ms`],
    ["GET", `/v1/executions/${id}/history`],
    ["GET", `/v1/executions/${id}/events`],
    ["POST", `/v1/executions/${id}/signals/go`],
    ["POST", `/v1/executions/${id}/cancel`],
    ["POST", `/v1/executions/${id}/retry`],
  ];

  it("answers odd execution ids with a clear 4xx", async () => {
    const ids = [
      "%F0%9F%92%A5",
      ...oddStrings.map(encodePath),
      "%00",
      "%E2%80%AE",
      "x".repeat(201),
      "%2E%2E%2F%2E%2E",
      "%ZZ",
      "%E0%A4%A",
      "a%2Fb",
    ];
    for (const id of ids) {
      for (const [method, url] of executionRoutes(id)) {
        const response = await send({ method, url, ...(method === "POST" ? { json: "{}" } : {}) });
        expectRefused(response, `${method} ${url.slice(0, 80)}`);
      }
    }
  });

  it("answers odd workflow names, in the path and in the document, with a clear 4xx, and stores none", async () => {
    for (const odd of oddStrings) {
      const inPath = encodePath(odd);
      for (const [method, url] of [
        ["PUT", `/v1/workflows/${inPath}`],
        ["GET", `/v1/workflows/${inPath}`],
        ["DELETE", `/v1/workflows/${inPath}`],
        ["POST", `/v1/workflows/${inPath}/executions`],
        ["GET", `/v1/executions?workflow=${inPath}`],
      ] as const) {
        const response = await send({
          method,
          url,
          ...(method === "PUT" ? { yaml: echoWorkflow } : method === "POST" ? { json: "{}" } : {}),
        });
        expectRefused(response, `${method} ${url.slice(0, 80)}`);
      }
      const named = echoWorkflow.replace("name: fuzzed", `name: ${JSON.stringify(odd)}`);
      expectRefused(
        await send({ method: "PUT", url: "/v1/workflows/fuzzed", yaml: named }),
        `named ${JSON.stringify(odd.slice(0, 20))}`,
      );
      expectRefused(
        await send({
          method: "PUT",
          url: "/v1/workflows/fuzzed",
          json: JSON.stringify({ baton: "v1", name: odd, steps: [] }),
        }),
        "json named",
      );
    }
    await expectOnlyWorkflows(["fuzzed"]);
  });

  it("answers odd signal names and query values with a clear 4xx", async () => {
    const started = await send({ method: "POST", url: "/v1/workflows/fuzzed/executions", json: "{}" });
    const { id } = started.json<{ id: string }>();
    for (const odd of oddStrings)
      expectRefused(
        await send({
          method: "POST",
          url: `/v1/executions/${id}/signals/${encodePath(odd)}`,
          json: "{}",
        }),
        `signal ${odd.slice(0, 20)}`,
      );
    for (const query of [
      "wait=99999999999h",
      "wait=-1s",
      "wait=1.5s",
      "wait=%00",
      "wait=1y",
      "wait=" + "9".repeat(500) + "s",
    ]) {
      expectRefused(await send({ method: "GET", url: `/v1/executions/${id}/result?${query}` }), query);
      expectRefused(
        await send({ method: "POST", url: `/v1/workflows/fuzzed/executions?${query}`, json: "{}" }),
        query,
      );
    }
    for (const query of [
      "limit=1e9",
      "limit=-1",
      "limit=%F0%9F%92%A5",
      "status=%00",
      "cursor=" + "A".repeat(1_000),
      "cursor=%E2%80%AE",
      "cursor=" + Buffer.from("after:../x").toString("base64url"),
      "after=-1",
    ]) {
      const response = await send({ method: "GET", url: `/v1/executions?${query}` });
      // `after` is not a parameter of the listing: ignored, so a 200 is a clear answer too.
      expectClearAnswer(response, query);
      if (!query.startsWith("after")) expect(response.statusCode, query).toBe(400);
    }
    for (const key of ["x".repeat(256), ""]) {
      expectRefused(
        await send({
          method: "POST",
          url: "/v1/workflows/fuzzed/executions",
          json: "{}",
          headers: { "idempotency-key": key },
        }),
        `idempotency key of ${key.length}`,
      );
    }
  });

  it("runs odd but valid inputs through without harm", async () => {
    const inputs = [
      { text: "\u0000\u202E💥\uFEFF" },
      { ["\u0000key"]: 1, ["💥"]: [1, 2, 3] },
      JSON.parse(`${"[".repeat(120)}1${"]".repeat(120)}`) as unknown,
      { big: 1e308, small: -1e-308, neg: -1 },
      "a string",
      null,
    ];
    for (const input of inputs) {
      const response = await send({
        method: "POST",
        url: "/v1/workflows/fuzzed/executions?wait=10s",
        json: JSON.stringify(input),
      });
      expect(response.statusCode, response.body.slice(0, 200)).toBe(200);
      expect(response.json<{ status: string; output: unknown }>()).toMatchObject({
        status: "succeeded",
        output: input === null ? null : input,
      });
    }
  });
});

describe("malformed requests over a real socket", () => {
  /** Sends raw bytes and reads the whole answer. */
  function raw(bytes: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = connectTcp({ host: "127.0.0.1", port: address.port });
      let received = "";
      socket.setEncoding("utf8");
      socket.setTimeout(10_000, () => socket.destroy(new Error("no answer within 10 s")));
      socket.on("data", (chunk: string) => (received += chunk));
      socket.on("end", () => resolve(received));
      socket.on("close", () => resolve(received));
      socket.on("error", reject);
      socket.end(bytes);
    });
  }

  const authorization = `Authorization: Bearer ${token}\r\n`;
  const cases: [string, string][] = [
    ["garbage request line", "GARBAGE\r\n\r\n"],
    ["NUL in the path", `GET /v1/executions/a\u0000b HTTP/1.1\r\nHost: x\r\n${authorization}\r\n`],
    [
      "bad percent encoding",
      `GET /v1/executions/%ZZ HTTP/1.1\r\nHost: x\r\n${authorization}Connection: close\r\n\r\n`,
    ],
    [
      "half a percent escape",
      `GET /v1/workflows/%E0%A4%A HTTP/1.1\r\nHost: x\r\n${authorization}Connection: close\r\n\r\n`,
    ],
    ["headers over the limit", `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`],
    [
      "a 10,000-character id",
      `GET /v1/executions/${"x".repeat(10_000)} HTTP/1.1\r\nHost: x\r\n${authorization}Connection: close\r\n\r\n`,
    ],
    ["a header with a control character", `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Odd: a\u0001b\r\n\r\n`],
    [
      "a chunked body that lies",
      `POST /v1/workflows/fuzzed/executions HTTP/1.1\r\nHost: x\r\n${authorization}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n{}\r\n0\r\n\r\n`,
    ],
  ];

  it.each(cases)("answers %s with a 4xx problem document", async (_name, bytes) => {
    const answer = await raw(bytes);
    const [head = "", body = ""] = answer.split("\r\n\r\n", 2);
    expect(head, answer.slice(0, 300)).toMatch(/^HTTP\/1\.1 4\d\d /);
    expect(head.toLowerCase()).toContain("content-type: application/problem+json");
    const problem = JSON.parse(body.trim()) as { code: string; status: number; detail: string };
    expect(problem.code).toMatch(/^[A-Z]\w+$/);
    expect(Number(head.slice(9, 12))).toBe(problem.status);
  });

  it("is still serving after all of it", async () => {
    expect(
      (await raw("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")).startsWith("HTTP/1.1 200"),
    ).toBe(true);
    const response = await send({
      method: "POST",
      url: "/v1/workflows/fuzzed/executions?wait=10s",
      json: '{"still":"alive"}',
    });
    expect(response.json()).toMatchObject({ status: "succeeded", output: { still: "alive" } });
  });
});

/** The workflows stored are exactly these (and their revisions). */
async function expectOnlyWorkflows(names: string[]): Promise<void> {
  const kv = await nc.jetstream().views.kv(buckets.workflows);
  const keys: string[] = [];
  for await (const key of await kv.keys()) keys.push(key);
  expect(keys.filter((key) => !key.includes(".")).sort()).toEqual([...names].sort());
  expect(keys.every((key) => names.some((name) => key === name || key.startsWith(`${name}.r`)))).toBe(true);
}

async function topLevelExecutions(): Promise<string[]> {
  const response = await send({ method: "GET", url: "/v1/executions?limit=500" });
  return response.json<{ items: { id: string }[] }>().items.map((item) => item.id);
}
