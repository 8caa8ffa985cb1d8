/**
 * `POST /v1/hooks/github` in-process (`inject()`) against a real nats-server, engine and matcher,
 * with GitHub's own example payloads (@octokit/webhooks-examples) signed as GitHub signs them:
 * each delivery starts exactly the executions it should, once; badly signed, unsigned,
 * oversized and malformed ones start nothing. Also `POST /v1/events` and the deliveries route.
 */
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import type { FastifyInstance, LightMyRequestResponse } from "fastify";
import { connect, type NatsConnection } from "nats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildServer } from "../../engine/api/server.ts";
import { loadEngineConfig } from "../../engine/config.ts";
import { Executions } from "../../engine/orchestrator/executions.ts";
import { Orchestrator } from "../../engine/orchestrator/orchestrator.ts";
import { githubBodyLimit, signGithubBody } from "../../engine/triggers/github-webhook.ts";
import { TriggerMatcher } from "../../engine/triggers/matcher.ts";
import { triggeredExecutionId } from "../../engine/triggers/trigger-event.ts";
import { useNatsServer } from "../helpers/nats-server.ts";
import { testLogger } from "../helpers/test-logger.ts";
import { serveScripted, type ScriptedWorker } from "../helpers/scripted-worker.ts";

interface WebhookDefinition {
  name: string;
  examples: Record<string, unknown>[];
}
const definitions = createRequire(import.meta.url)("@octokit/webhooks-examples") as WebhookDefinition[];

/** GitHub's example payload of an event (the first with this action, when given). */
function example(name: string, action?: string): Record<string, unknown> {
  const found = definitions
    .find((definition) => definition.name === name)
    ?.examples.find((payload) => action === undefined || payload.action === action);
  if (!found) throw new Error(`no example ${name}${action ? `.${action}` : ""}`);
  return structuredClone(found);
}

const server = useNatsServer();
const token = "webhook-test-token-0123456789";
const secret = "new-secret-0123456789";
const oldSecret = "old-secret-9876543210";

let nc: NatsConnection;
let engine: Orchestrator;
let executions: Executions;
let matcher: TriggerMatcher;
let worker: ScriptedWorker;
let app: FastifyInstance;

const githubWorkflow = (name: string, trigger: string) => `baton: v1
name: ${name}
triggers:
  - github:
${trigger}
steps:
  - name: seen
    return:
      type: \${ $trigger.type }
      delivery: \${ $trigger.id }
      repository: \${ $trigger.subject }
`;

const workflows = [
  readFileSync(new URL("../../workflows/pr-build-report.yaml", import.meta.url), "utf8"),
  githubWorkflow("on-push", "      events: [push]\n      repository: Codertocat/Hello-World"),
  githubWorkflow("on-push-elsewhere", "      events: [push]\n      repository: acme/elsewhere"),
  githubWorkflow("on-pr-opened", '      events: [pull_request]\n      when: ${ $event.action = "opened" }'),
  githubWorkflow("on-issues", "      events: [issues]"),
  githubWorkflow("on-release", '      events: [release]\n      when: ${ $event.action = "published" }'),
  githubWorkflow(
    "on-workflow-run",
    '      events: [workflow_run]\n      when: ${ $event.action = "completed" }',
  ),
];

interface Delivery {
  type: string;
  id?: string;
  body: Buffer | string;
  sign?: string | null;
  signature?: string;
  headers?: Record<string, string>;
}

function deliver({ type, id = randomUUID(), body, sign = secret, signature, headers = {} }: Delivery) {
  const raw = typeof body === "string" ? Buffer.from(body) : body;
  return app.inject({
    method: "POST",
    url: "/v1/hooks/github",
    headers: {
      "content-type": "application/json",
      "user-agent": "GitHub-Hookshot/044aadd",
      "x-github-event": type,
      "x-github-delivery": id,
      ...(signature !== undefined ? { "x-hub-signature-256": signature } : {}),
      ...(sign !== null && signature === undefined
        ? { "x-hub-signature-256": signGithubBody(sign, raw) }
        : {}),
      ...headers,
    },
    payload: raw,
  });
}

const deliverPayload = (type: string, payload: unknown, id?: string) =>
  deliver({ type, body: JSON.stringify(payload), ...(id === undefined ? {} : { id }) });

interface Accepted {
  delivery: string;
  source: string;
  executions: string[];
  started: { workflow: string; execution: string }[];
  rejected?: { workflow: string; reason: string }[];
  replayed: boolean;
}

/** Every execution a delivery started, to wait for before counting executions. */
const startedSoFar = new Set<string>();

function accepted(response: LightMyRequestResponse): Accepted {
  expect(response.statusCode, response.body).toBe(202);
  const answer = response.json<Accepted>();
  for (const execution of answer.executions) startedSoFar.add(execution);
  return answer;
}

/** Waits until every execution started so far has ended (so that listings are complete). */
async function settle(): Promise<void> {
  for (const execution of startedSoFar)
    expect((await executions.waitForEnd(execution, 10_000))?.status, execution).toBe("succeeded");
}

function expectProblem(response: LightMyRequestResponse, status: number, code: string) {
  expect(response.statusCode, response.body).toBe(status);
  expect(response.headers["content-type"]).toMatch(/application\/problem\+json/);
  expect(response.json()).toMatchObject({ status, code });
}

const deliveryOf = (id: string, source = "github") =>
  app.inject({
    method: "GET",
    url: `/v1/deliveries/${source}/${encodeURIComponent(id)}`,
    headers: { authorization: `Bearer ${token}` },
  });

async function executionsOf(workflow: string): Promise<string[]> {
  return (await executions.list({ workflow, limit: 1_000 })).items.map((item) => item.id).sort();
}

/** The executions every workflow has, to check that a request started nothing. */
async function allExecutions(): Promise<Record<string, string[]>> {
  await settle();
  const names = [
    "pr-build-report",
    "on-push",
    "on-push-elsewhere",
    "on-pr-opened",
    "on-issues",
    "on-release",
    "on-workflow-run",
  ];
  return Object.fromEntries(
    await Promise.all(names.map(async (name) => [name, await executionsOf(name)] as const)),
  );
}

beforeAll(async () => {
  nc = await connect({ servers: server().url });
  engine = await Orchestrator.create(
    nc,
    { ...loadEngineConfig({ NATS_URL: server().url }), retentionMs: 60_000 },
    testLogger,
  );
  await engine.start();
  executions = await Executions.connect(nc);
  worker = await serveScripted(nc, {
    build: (input) => ({ status: "passed", sha: (input as { sha: string }).sha }),
  });
  for (const yaml of workflows) await executions.apply(yaml);
  matcher = await TriggerMatcher.start(executions, testLogger);
  app = await buildServer({
    executions,
    config: { tokens: [token], githubSecrets: [secret, oldSecret], bodyLimit: 256 * 1024 },
  });
  await app.ready();
});

afterAll(async () => {
  await app?.close();
  worker?.stop();
  await matcher?.stop();
  await engine?.stop();
  await nc?.drain();
});

describe("GitHub deliveries, signed", () => {
  it("a push starts the workflows on that repository's pushes, with $trigger set", async () => {
    const id = randomUUID();
    const answer = accepted(await deliverPayload("push", example("push"), id));
    const execution = answer.executions[0]!;
    expect(answer).toMatchObject({
      delivery: id,
      source: "github",
      replayed: false,
      started: [{ workflow: "on-push", execution }],
    });
    expect(answer.executions).toHaveLength(1);
    const ended = await executions.waitForEnd(execution, 10_000);
    expect(ended).toMatchObject({
      status: "succeeded",
      output: { type: "push", delivery: id, repository: "Codertocat/Hello-World" },
    });
    const record = await deliveryOf(id);
    expect(record.statusCode).toBe(200);
    expect(record.json()).toMatchObject({ source: "github", id, type: "push", executions: answer.started });
  });

  it("a pull request opened starts its workflow; one closed without merging starts nothing", async () => {
    const opened = accepted(await deliverPayload("pull_request", example("pull_request", "opened")));
    expect(opened.started.map((started) => started.workflow)).toEqual(["on-pr-opened"]);
    const closed = example("pull_request", "closed");
    expect((closed.pull_request as { merged: boolean }).merged).toBe(false);
    expect(accepted(await deliverPayload("pull_request", closed)).executions).toEqual([]);
  });

  it("a merged pull request starts a build report (workflows/pr-build-report.yaml)", async () => {
    const merged = example("pull_request", "closed");
    (merged.pull_request as { merged: boolean }).merged = true;
    const id = randomUUID();
    const answer = accepted(await deliverPayload("pull_request", merged, id));
    expect(answer.started).toEqual([{ workflow: "pr-build-report", execution: answer.executions[0] }]);
    const ended = await executions.waitForEnd(answer.executions[0]!, 10_000);
    expect(ended).toMatchObject({
      status: "succeeded",
      output: {
        repo: "Codertocat/Hello-World",
        pullRequest: 2,
        sha: "c4295bd74fb0f4fda03689c3df3f2803b658fd85",
        status: "passed",
        summary: "#2 Update the README with new information.: build passed",
        delivery: id,
      },
    });
  });

  it("issues, release (by action) and workflow_run reach their workflows", async () => {
    const issues = accepted(await deliverPayload("issues", example("issues")));
    expect(issues.started.map((started) => started.workflow)).toEqual(["on-issues"]);
    const published = accepted(await deliverPayload("release", example("release", "published")));
    expect(published.started.map((started) => started.workflow)).toEqual(["on-release"]);
    const created = accepted(await deliverPayload("release", example("release", "created")));
    expect(created.executions).toEqual([]);
    const run = accepted(await deliverPayload("workflow_run", example("workflow_run", "completed")));
    expect(run.started.map((started) => started.workflow)).toEqual(["on-workflow-run"]);
    for (const execution of [...issues.executions, ...published.executions, ...run.executions])
      expect((await executions.waitForEnd(execution, 10_000))?.status).toBe("succeeded");
  });

  it("answers a ping with 200 and records nothing", async () => {
    const id = randomUUID();
    const response = await deliverPayload("ping", example("ping"), id);
    expect(response.statusCode, response.body).toBe(200);
    expect(response.json()).toMatchObject({ ok: true, zen: expect.any(String) as string });
    expectProblem(await deliveryOf(id), 404, "DeliveryNotFound");
  });

  it("takes an event no workflow listens to: 202 with no executions, recorded", async () => {
    const id = randomUUID();
    const answer = accepted(await deliver({ type: "star", id, body: JSON.stringify({ action: "created" }) }));
    expect(answer.executions).toEqual([]);
    expect((await deliveryOf(id)).json()).toMatchObject({ id, type: "star", executions: [] });
  });

  it("accepts a signature made with any configured secret (rotation), and form-encoded bodies", async () => {
    const body = JSON.stringify(example("issues"));
    const old = accepted(await deliver({ type: "issues", body, sign: oldSecret }));
    expect(old.started.map((started) => started.workflow)).toEqual(["on-issues"]);
    const form = `payload=${encodeURIComponent(body)}`;
    const encoded = accepted(
      await deliver({
        type: "issues",
        body: form,
        headers: { "content-type": "application/x-www-form-urlencoded" },
      }),
    );
    expect(encoded.started.map((started) => started.workflow)).toEqual(["on-issues"]);
  });

  it("answers a redelivery with the first one's executions and starts nothing", async () => {
    const id = randomUUID();
    const body = JSON.stringify(example("push"));
    const first = accepted(await deliver({ type: "push", id, body }));
    await settle();
    const before = await executionsOf("on-push");
    const again = accepted(await deliver({ type: "push", id, body }));
    expect(again).toMatchObject({ delivery: id, executions: first.executions, replayed: true });
    // GitHub redelivers with the same id; even a changed body starts nothing new.
    const changed = accepted(
      await deliverPayload("push", { ...example("push"), ref: "refs/heads/other" }, id),
    );
    expect(changed.executions).toEqual(first.executions);
    // Concurrent redeliveries of a new delivery agree on one execution.
    const racing = randomUUID();
    const answers = (await Promise.all([1, 2, 3].map(() => deliver({ type: "push", id: racing, body })))).map(
      accepted,
    );
    expect(new Set(answers.map((answer) => answer.executions.join()))).toHaveProperty("size", 1);
    await settle();
    const after = await executionsOf("on-push");
    expect(after.filter((execution) => !before.includes(execution))).toEqual(answers[0]!.executions);
  });
});

describe("GitHub deliveries refused", () => {
  it("refuses a bad, a foreign, an unsigned or a malformed signature with 401, starting nothing", async () => {
    const before = await allExecutions();
    const body = JSON.stringify(example("push"));
    const ids: string[] = [];
    const refused = [
      { sign: "not-the-secret" },
      { sign: null },
      { signature: "sha256=" + "0".repeat(64) },
      { signature: "sha1=0123" },
      { signature: signGithubBody(secret, body).replace("sha256=", "") },
    ];
    for (const how of refused) {
      const id = randomUUID();
      ids.push(id);
      expectProblem(await deliver({ type: "push", id, body, ...how }), 401, "SignatureInvalid");
    }
    // Signed over other bytes than those sent.
    const tampered = randomUUID();
    ids.push(tampered);
    expectProblem(
      await deliver({
        type: "push",
        id: tampered,
        body: body.replace("Hello-World", "Hello-Wor1d"),
        signature: signGithubBody(secret, body),
      }),
      401,
      "SignatureInvalid",
    );
    for (const id of ids) expectProblem(await deliveryOf(id), 404, "DeliveryNotFound");
    expect(await allExecutions()).toEqual(before);
  });

  it("needs no bearer token, but a secret: without one every delivery is refused", async () => {
    const closed = await buildServer({ executions, config: { tokens: [token] } });
    try {
      const body = JSON.stringify(example("push"));
      const response = await closed.inject({
        method: "POST",
        url: "/v1/hooks/github",
        headers: {
          "content-type": "application/json",
          "x-github-event": "push",
          "x-github-delivery": randomUUID(),
          "x-hub-signature-256": signGithubBody(secret, body),
        },
        payload: body,
      });
      expectProblem(response, 401, "SignatureInvalid");
    } finally {
      await closed.close();
    }
  });

  it("refuses malformed JSON (400), missing headers (400) and oversized bodies (413), starting nothing", async () => {
    const before = await allExecutions();
    const malformed = randomUUID();
    expectProblem(
      await deliver({ type: "push", id: malformed, body: '{"ref": "refs/heads/main",' }),
      400,
      "RequestInvalid",
    );
    expectProblem(
      await deliver({ type: "push", body: "{}", headers: { "x-github-delivery": "" } }),
      400,
      "RequestInvalid",
    );
    const oversized = Buffer.alloc(githubBodyLimit + 1, 0x20);
    expectProblem(await deliver({ type: "push", body: oversized }), 413, "BodyTooLarge");
    expectProblem(await deliveryOf(malformed), 404, "DeliveryNotFound");
    expect(await allExecutions()).toEqual(before);
  });

  it("takes bodies above the API's own limit (GitHub sends up to 25 MiB)", async () => {
    const big = { ...example("push"), padding: "x".repeat(300 * 1024) };
    const answer = accepted(await deliverPayload("push", big));
    expect(answer.started.map((started) => started.workflow)).toEqual(["on-push"]);
  });

  it("records, rather than fails on, a delivery whose start is larger than NATS takes", async () => {
    const huge = { ...example("push"), padding: "x".repeat(900 * 1024) };
    const answer = accepted(await deliverPayload("push", huge));
    expect(answer.executions).toEqual([]);
    expect(answer.rejected).toEqual([
      { workflow: "on-push", reason: expect.stringMatching(/max_payload/) as string },
    ]);
    expect((await deliveryOf(answer.delivery)).json()).toMatchObject({ rejected: answer.rejected });
  });
});

describe("POST /v1/events and deliveries", () => {
  const call = (body: unknown) =>
    app.inject({
      method: "POST",
      url: "/v1/events",
      headers: { authorization: `Bearer ${token}` },
      payload: body as object,
    });

  beforeAll(async () => {
    await executions.apply(`baton: v1
name: on-node-joined
triggers:
  - infra:
      events: [node.joined]
steps:
  - name: seen
    return: \${ $event }
---
baton: v1
name: on-order
triggers:
  - queue:
      subject: orders.*
steps:
  - name: seen
    return: \${ $trigger.subject }
`);
  });

  it("starts infra-triggered workflows (source infra by default), once per id", async () => {
    const id = randomUUID();
    const answer = accepted(await call({ type: "node.joined", data: { node: "n1" }, id }));
    expect(answer).toMatchObject({ delivery: id, source: "infra", replayed: false });
    expect(answer.started.map((started) => started.workflow)).toEqual(["on-node-joined"]);
    expect((await executions.waitForEnd(answer.executions[0]!, 10_000))?.output).toEqual({ node: "n1" });
    const again = accepted(await call({ type: "node.joined", data: { node: "n1" }, id }));
    expect(again).toMatchObject({ executions: answer.executions, replayed: true });
    expect((await deliveryOf(id, "infra")).json()).toMatchObject({ executions: answer.started });
  });

  it("starts queue-triggered workflows by subject", async () => {
    const answer = accepted(await call({ source: "queue", type: "message", subject: "orders.7", data: {} }));
    const record = (await deliveryOf(answer.delivery, "queue")).json<{ receivedAt: string }>();
    expect(answer.started.map((started) => started.workflow)).toEqual(["on-order"]);
    expect(answer.executions).toEqual([
      triggeredExecutionId({ source: "queue", id: answer.delivery, time: record.receivedAt }, "on-order"),
    ]);
    expect(await executions.waitForEnd(answer.executions[0]!, 10_000)).toMatchObject({ output: "orders.7" });
  });

  it("refuses malformed events", async () => {
    expectProblem(await call({ type: "x" }), 400, "RequestInvalid");
    expectProblem(await call({ source: "ci", type: "x", data: {} }), 400, "RequestInvalid");
    expectProblem(await call({ source: "queue", type: "message", data: {} }), 400, "RequestInvalid");
    expectProblem(await deliveryOf("x", "nowhere"), 400, "RequestInvalid");
  });
});
