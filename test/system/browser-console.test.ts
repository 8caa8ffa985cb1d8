/**
 * The web console (/ui) in headless Chromium, against real processes (API with engine, a worker
 * serving functions/examples.ts and functions/train.ts, nats-server), with API tokens configured:
 * it asks for a token, lists executions, shows an execution's timeline with every step and its
 * attempts, and cancels and retries executions. With BATON_SCREENSHOTS=1 it also saves the
 * screenshots of docs/images/.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { launchBrowser } from "../helpers/browser.ts";
import { useNatsServer } from "../helpers/nats-server.ts";
import { killAllProcesses, spawnProcess, waitUntil } from "../helpers/processes.ts";

const root = join(import.meta.dirname, "../..");
const server = useNatsServer();
const token = "console-test-token-0123456789";
const screenshots = process.env.BATON_SCREENSHOTS === "1";

let browser: Browser;
let context: BrowserContext;
let api: string;

const workflows: Record<string, string> = {
  "console-demo": `baton: v1
name: console-demo
description: A step that succeeds on its third attempt, between two others.
steps:
  - { name: prepare, call: echo, with: { ready: true } }
  - name: fetch
    call: flaky
    with: { failures: 2 }
    retry: { attempts: 5, delay: 300ms, backoff: constant }
  - { name: rest, call: sleep, with: { ms: 400 } }
`,
  "console-fail": `baton: v1
name: console-fail
steps:
  - { name: first, call: echo }
  - name: broken
    call: fail-with
    with: { code: Broken, message: always broken, retryable: true }
    retry: { attempts: 2, delay: 100ms }
`,
  "console-wait": `baton: v1
name: console-wait
steps:
  - { name: before, call: echo }
  - { name: pause, wait: 1h }
`,
};

async function call<T>(
  method: string,
  path: string,
  body?: unknown,
  contentType = "application/json",
): Promise<T> {
  const response = await fetch(`${api}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { "content-type": contentType }),
    },
    ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return (text ? JSON.parse(text) : null) as T;
}

const start = async (workflow: string, input: unknown = {}) =>
  (await call<{ id: string }>("POST", `/v1/workflows/${workflow}/executions`, input)).id;
const statusOf = async (id: string) => (await call<{ status: string }>("GET", `/v1/executions/${id}`)).status;

beforeAll(async () => {
  const apiProcess = spawnProcess(
    process.execPath,
    ["--import", "tsx", join(root, "engine/api/run-api.ts")],
    {
      name: "api",
      cwd: root,
      env: {
        NATS_URL: server().url,
        BATON_ENGINE_ID: "console-api",
        BATON_LISTEN: "127.0.0.1:0",
        BATON_API_TOKENS: token,
      },
    },
  );
  const worker = spawnProcess(
    process.execPath,
    [
      join(root, "bin/baton.mjs"),
      "worker",
      join(root, "functions/examples.ts"),
      join(root, "functions/train.ts"),
    ],
    {
      name: "worker",
      cwd: root,
      env: { NATS_URL: server().url, BATON_WORKER_NAME: "console-worker", BATON_LOG_LEVEL: "info" },
    },
  );
  [api] = (
    await apiProcess.waitForLine(/"message":"api listening".*"url":"(http:\/\/[^"]+)"/, { timeoutMs: 30_000 })
  ).slice(1) as [string];
  await worker.waitForLine(/serving/, { timeoutMs: 30_000 });
  for (const [name, yaml] of Object.entries({
    ...workflows,
    "train-model": readFileSync(join(root, "workflows/train-model.yaml"), "utf8"),
  }))
    await call("PUT", `/v1/workflows/${name}`, yaml, "application/yaml");
  browser = await launchBrowser();
  context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await killAllProcesses();
});

/** Opens the console at `hash`, giving the token if it asks for one. */
/**
 * A console page with the token already given in this tab (sessionStorage `baton.token`, as the
 * token prompt saves it; the first test goes through the prompt itself). Checking for the prompt
 * instead raced with it: the prompt appears only once the first request has come back 401, after
 * the header, so on a loaded machine the check could come first and the page stayed on it.
 */
async function openConsole(hash: string): Promise<Page> {
  const page = await context.newPage();
  await page.addInitScript((saved) => {
    (
      globalThis as unknown as { sessionStorage: { setItem(key: string, value: string): void } }
    ).sessionStorage.setItem("baton.token", saved);
  }, token);
  await page.goto(`${api}/ui#${hash}`);
  await page.locator("header").waitFor({ timeout: 60_000 });
  return page;
}

const timelineRows = async (page: Page) =>
  JSON.parse((await page.getAttribute(".timeline", "data-rows")) ?? "[]") as {
    step: string;
    attempts: string[];
    waits: number;
  }[];

describe("the console at /ui", () => {
  it("asks for the token, lists the execution, and its timeline shows every step with its attempts", async () => {
    const id = await start("console-demo");
    await waitUntil(
      "console-demo to succeed",
      async () => ((await statusOf(id)) === "succeeded" ? true : undefined),
      {
        timeoutMs: 30_000,
      },
    );
    const page = await context.newPage();
    // The first request of /ui builds the console's modules (esbuild): allow for it.
    await page.goto(`${api}/ui#/executions`);
    await page.getByLabel("API token").fill(token, { timeout: 60_000 });
    await page.getByRole("button", { name: "Use this token" }).click();
    const link = page.locator(`[data-testid=executions] a[href="#/executions/${id}"]`);
    await link.waitFor({ timeout: 15_000 });
    await link.click();
    await page
      .locator("[data-testid=execution-status]", { hasText: "succeeded" })
      .waitFor({ timeout: 15_000 });
    await page.waitForFunction(
      () =>
        ((
          globalThis as unknown as {
            document: {
              querySelector(selector: string): { getAttribute(name: string): string | null } | null;
            };
          }
        ).document
          .querySelector(".timeline")
          ?.getAttribute("data-rows") ?? "[]") !== "[]",
    );
    const rows = await timelineRows(page);
    expect(rows.map((row) => row.step)).toEqual(["prepare", "fetch", "rest"]);
    expect(rows.find((row) => row.step === "fetch")!.attempts).toEqual(["failed", "failed", "succeeded"]);
    expect(rows.find((row) => row.step === "fetch")!.waits).toBe(2);
    expect(rows.find((row) => row.step === "prepare")!.attempts).toEqual(["succeeded"]);
    expect(await page.textContent("[data-step=fetch] [data-testid=attempts]")).toBe("3");
    expect(await page.textContent("[data-step=fetch]")).toContain("Flaky");
    if (screenshots)
      await page.screenshot({ path: join(root, "docs/images/console-execution.png"), fullPage: true });
    await page.close();
  });

  it("cancels a running execution from the console", async () => {
    const id = await start("console-wait");
    await waitUntil(
      "console-wait to wait",
      async () => ((await statusOf(id)) === "waiting" ? true : undefined),
      {
        timeoutMs: 30_000,
      },
    );
    const page = await openConsole(`/executions/${id}`);
    await page.getByRole("button", { name: "Cancel" }).click();
    await page
      .locator("[data-testid=execution-status]", { hasText: "cancelled" })
      .waitFor({ timeout: 15_000 });
    expect(await statusOf(id)).toBe("cancelled");
    await page.close();
  });

  it("retries a failed execution from the failed step", async () => {
    const id = await start("console-fail");
    await waitUntil(
      "console-fail to fail",
      async () => ((await statusOf(id)) === "failed" ? true : undefined),
      {
        timeoutMs: 30_000,
      },
    );
    const page = await openConsole(`/executions/${id}`);
    await page.getByRole("button", { name: "Retry from the failed step" }).click();
    await waitUntil(
      "the retry in the history",
      async () => {
        const history = await call<{ items: { type: string; step?: string }[] }>(
          "GET",
          `/v1/executions/${id}/history`,
        );
        const retried = history.items.findIndex((event) => event.type === "ExecutionRetried");
        // The retry ran the failed step again and not the one before it.
        const after = history.items.slice(retried + 1);
        return retried >= 0 &&
          after.some((event) => event.type === "ExecutionFailed") &&
          after.some((event) => event.step === "broken") &&
          !after.some((event) => event.step === "first")
          ? true
          : undefined;
      },
      { timeoutMs: 30_000 },
    );
    await page.locator("text=ExecutionRetried").first().waitFor({ timeout: 15_000 });
    await page.close();
  });

  it(
    "shows progress live, workflows with their routes, workers and deliveries",
    { timeout: 180_000 },
    async () => {
      const started = await fetch(`${api}/train`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        // A minute of training: progress is shown only while the step runs, and a loaded machine
        // may take seconds to load the page and open its websocket. Cancelled below.
        body: JSON.stringify({ epochs: 100, msPerEpoch: 600 }),
      });
      const { id } = (await started.json()) as { id: string };
      onTestFinished(async () => {
        await call("POST", `/v1/executions/${id}/cancel`).catch(() => undefined);
      });
      const page = await openConsole(`/executions/${id}`);
      // The bar shows "starting" until the first report of the attempt arrives: wait for one.
      await page
        .locator("[data-testid=progress]", { hasText: /train attempt 1 · epoch \d+\/100/ })
        .waitFor({ timeout: 40_000 });
      if (screenshots)
        await page.screenshot({ path: join(root, "docs/images/console-progress.png"), fullPage: true });

      await page.goto(`${api}/ui#/workflows/train-model`);
      await page.locator("text=POST /train (async, public, 20/s)").waitFor({ timeout: 10_000 });
      // The diagram of the steps, drawn by Mermaid (loaded on demand).
      await page.locator("[data-testid=diagram] svg").waitFor({ timeout: 30_000 });
      const diagram = (await page.textContent("[data-testid=diagram]")) ?? "";
      for (const step of ["prepare", "train", "report"]) expect(diagram).toContain(step);
      if (screenshots)
        await page.screenshot({ path: join(root, "docs/images/console-workflow.png"), fullPage: true });

      await page.goto(`${api}/ui#/workers`);
      await page.locator("[data-testid=workers]", { hasText: "console-worker" }).waitFor({ timeout: 10_000 });
      expect(await page.textContent("[data-testid=workers]")).toContain("train-model");

      await page.goto(`${api}/ui#/deliveries`);
      await page
        .locator(`[data-testid=deliveries] a[href="#/executions/${id}"]`)
        .waitFor({ timeout: 10_000 });

      await page.goto(`${api}/ui#/executions`);
      await page
        .locator(`[data-testid=executions] a[href="#/executions/${id}"]`)
        .waitFor({ timeout: 10_000 });
      if (screenshots)
        await page.screenshot({ path: join(root, "docs/images/console-executions.png"), fullPage: true });
      await page.close();
    },
  );
});
