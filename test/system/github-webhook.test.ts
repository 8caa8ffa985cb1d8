/**
 * GitHub webhooks from outside: a real process serving the API with an engine (and its trigger
 * matcher) in it, configured with two webhook secrets (`BATON_GITHUB_SECRET`, rotation), a real
 * worker process serving `build`, a real nats-server; deliveries are GitHub's own example
 * payloads (@octokit/webhooks-examples) sent over real HTTP, signed as GitHub signs them.
 * A merged pull request starts workflows/pr-build-report.yaml, once however often it is
 * delivered.
 */
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signGithubBody } from "../../engine/triggers/github-webhook.ts";
import { useNatsServer } from "../helpers/nats-server.ts";
import { killAllProcesses, spawnProcess } from "../helpers/processes.ts";

const root = join(import.meta.dirname, "../..");
const server = useNatsServer();
const token = "github-system-token-0123456789";
const secrets = ["old-webhook-secret", "new-webhook-secret"];
let base: string;

interface WebhookDefinition {
  name: string;
  examples: Record<string, unknown>[];
}
const definitions = createRequire(import.meta.url)("@octokit/webhooks-examples") as WebhookDefinition[];
const example = (name: string, action: string) =>
  structuredClone(
    definitions
      .find((definition) => definition.name === name)!
      .examples.find((payload) => payload.action === action)!,
  );

beforeAll(async () => {
  const api = spawnProcess(process.execPath, ["--import", "tsx", join(root, "engine/api/run-api.ts")], {
    name: "api",
    cwd: root,
    env: {
      NATS_URL: server().url,
      BATON_ENGINE_ID: "github-system",
      BATON_LISTEN: "127.0.0.1:0",
      BATON_API_TOKENS: token,
      BATON_GITHUB_SECRET: secrets.join(","),
    },
  });
  const worker = spawnProcess(
    process.execPath,
    [join(root, "bin/baton.mjs"), "worker", join(root, "test/fixtures/worker/github-build.ts")],
    { name: "worker", cwd: root, env: { NATS_URL: server().url, BATON_WORKER_NAME: "github-build" } },
  );
  const match = await api.waitForLine(/"message":"api listening".*"url":"(http:\/\/[^"]+)"/, {
    timeoutMs: 30_000,
  });
  base = match[1]!;
  await worker.waitForLine(/serving/, { timeoutMs: 30_000 });
  const yaml = readFileSync(join(root, "workflows/pr-build-report.yaml"), "utf8");
  const put = await fetch(`${base}/v1/workflows/pr-build-report`, {
    method: "PUT",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/yaml" },
    body: yaml,
  });
  expect(put.status, await put.text()).toBe(201);
});

afterAll(async () => {
  await killAllProcesses();
});

async function deliver(type: string, id: string, payload: unknown, secret: string | null) {
  const body = JSON.stringify(payload);
  const response = await fetch(`${base}/v1/hooks/github`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-github-event": type,
      "x-github-delivery": id,
      ...(secret === null ? {} : { "x-hub-signature-256": signGithubBody(secret, body) }),
    },
    body,
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

const authorized = async (path: string) => {
  const response = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${token}` } });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
};

describe("a merged pull request starts a build report", () => {
  it("builds and reports it, once per delivery, whichever secret signed it", async () => {
    const merged = example("pull_request", "closed");
    (merged.pull_request as { merged: boolean }).merged = true;
    const id = randomUUID();
    const first = await deliver("pull_request", id, merged, secrets[0]!);
    expect(first.status, JSON.stringify(first.body)).toBe(202);
    const executions = first.body.executions as string[];
    expect(executions).toHaveLength(1);

    const result = await authorized(`/v1/executions/${executions[0]}/result?wait=30s`);
    expect(result.status, JSON.stringify(result.body)).toBe(200);
    expect(result.body).toMatchObject({
      status: "succeeded",
      output: {
        repo: "Codertocat/Hello-World",
        pullRequest: 2,
        status: "passed",
        summary: "#2 Update the README with new information.: build passed",
        delivery: id,
      },
    });

    // GitHub redelivers (the same X-GitHub-Delivery), now signed with the new secret.
    const again = await deliver("pull_request", id, merged, secrets[1]!);
    expect(again).toMatchObject({ status: 202, body: { executions, replayed: true } });
    const listed = await authorized("/v1/executions?workflow=pr-build-report");
    expect((listed.body.items as { id: string }[]).map((item) => item.id)).toEqual(executions);
    expect(await authorized(`/v1/deliveries/github/${id}`)).toMatchObject({
      status: 200,
      body: { type: "pull_request", executions: [{ workflow: "pr-build-report", execution: executions[0] }] },
    });
  });

  it("starts nothing for a pull request closed unmerged, or a delivery badly signed or unsigned", async () => {
    const closed = await deliver(
      "pull_request",
      randomUUID(),
      example("pull_request", "closed"),
      secrets[1]!,
    );
    expect(closed).toMatchObject({ status: 202, body: { executions: [] } });
    const merged = example("pull_request", "closed");
    (merged.pull_request as { merged: boolean }).merged = true;
    expect(await deliver("pull_request", randomUUID(), merged, "not-a-secret")).toMatchObject({
      status: 401,
      body: { code: "SignatureInvalid" },
    });
    expect(await deliver("pull_request", randomUUID(), merged, null)).toMatchObject({
      status: 401,
      body: { code: "SignatureInvalid" },
    });
    const listed = await authorized("/v1/executions?workflow=pr-build-report");
    expect(listed.body.items).toHaveLength(1);
  });
});
