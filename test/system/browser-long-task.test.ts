/**
 * The long-task pattern in a real browser (headless Chromium): examples/web/long-task.html,
 * served from another origin than the API, POSTs /train (CORS preflight, 202 with links), follows
 * the events websocket with the link's access token, shows the progress functions/train.ts
 * reports, then the result. A page from an origin not in BATON_API_CORS_ORIGINS is refused, its
 * request never reaches a workflow, and its websockets are refused too. Real processes: API with
 * engine (run-api.ts), worker (baton worker), nats-server.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchBrowser, serveStatic, type StaticSite } from "../helpers/browser.ts";
import { useNatsServer } from "../helpers/nats-server.ts";
import { killAllProcesses, spawnProcess } from "../helpers/processes.ts";

const root = join(import.meta.dirname, "../..");
const server = useNatsServer();
const page = join(root, "examples/web/long-task.html");

let browser: Browser;
let allowed: StaticSite;
let refused: StaticSite;
let api: string;

beforeAll(async () => {
  allowed = await serveStatic({ "/long-task.html": page });
  refused = await serveStatic({ "/long-task.html": page });
  const apiProcess = spawnProcess(
    process.execPath,
    ["--import", "tsx", join(root, "engine/api/run-api.ts")],
    {
      name: "api",
      cwd: root,
      env: {
        NATS_URL: server().url,
        BATON_ENGINE_ID: "browser-api",
        BATON_LISTEN: "127.0.0.1:0",
        BATON_API_CORS_ORIGINS: allowed.origin,
      },
    },
  );
  const worker = spawnProcess(
    process.execPath,
    [join(root, "bin/baton.mjs"), "worker", join(root, "functions/train.ts")],
    {
      name: "worker",
      cwd: root,
      env: { NATS_URL: server().url, BATON_WORKER_NAME: "browser-worker", BATON_LOG_LEVEL: "info" },
    },
  );
  [api] = (
    await apiProcess.waitForLine(/"message":"api listening".*"url":"(http:\/\/[^"]+)"/, { timeoutMs: 30_000 })
  ).slice(1) as [string];
  await worker.waitForLine(/serving/, { timeoutMs: 30_000 });
  const submitted = await fetch(`${api}/v1/workflows/train-model`, {
    method: "PUT",
    headers: { "content-type": "application/yaml" },
    body: readFileSync(join(root, "workflows/train-model.yaml"), "utf8"),
  });
  expect(submitted.status, await submitted.text()).toBe(201);
  browser = await launchBrowser();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await allowed?.close();
  await refused?.close();
  await killAllProcesses();
});

const trainCount = async () =>
  (
    (await (await fetch(`${api}/v1/executions?workflow=train-model&limit=500`)).json()) as {
      items: unknown[];
    }
  ).items.length;

describe("examples/web/long-task.html in Chromium", () => {
  it("runs the whole pattern from another origin: 202, websocket with the access token, progress, result", async () => {
    const tab = await browser.newPage();
    try {
      await tab.goto(`${allowed.origin}/long-task.html?api=${encodeURIComponent(api)}`);
      await tab.fill("#epochs", "6");
      await tab.click("#start");
      await tab.waitForSelector("body[data-state]", { timeout: 30_000 });
      expect(await tab.getAttribute("body", "data-state"), (await tab.textContent("#error")) ?? "").toBe(
        "succeeded",
      );
      const result = JSON.parse((await tab.textContent("#result")) ?? "null") as {
        epochs: number;
        accuracy: number;
      };
      expect(result).toMatchObject({ model: "trained", epochs: 6 });
      const progress = await tab.evaluate(
        () => (globalThis as unknown as { progressSeen: number[] }).progressSeen,
      );
      expect(
        progress.some((fraction) => fraction > 0 && fraction < 1),
        JSON.stringify(progress),
      ).toBe(true);
      expect(progress.at(-1)).toBe(1);
      expect(await tab.$eval("#bar", (bar) => (bar as unknown as { value: number }).value)).toBe(1);
      const id = await tab.getAttribute("body", "data-execution");
      const execution = (await (await fetch(`${api}/v1/executions/${id}`)).json()) as { status: string };
      expect(execution.status).toBe("succeeded");
    } finally {
      await tab.close();
    }
  });

  it("refuses a page from an origin not in BATON_API_CORS_ORIGINS: nothing starts, and its websockets fail", async () => {
    const before = await trainCount();
    const tab = await browser.newPage();
    try {
      await tab.goto(`${refused.origin}/long-task.html?api=${encodeURIComponent(api)}`);
      await tab.click("#start");
      await tab.waitForSelector("body[data-state]", { timeout: 30_000 });
      expect(await tab.getAttribute("body", "data-state")).toBe("failed");
      expect(await tab.textContent("#error")).toContain("BATON_API_CORS_ORIGINS");
      // The preflight was refused, so the POST was never sent.
      expect(await trainCount()).toBe(before);
      // Even with a valid events link, a websocket from this origin is refused at the upgrade.
      const started = (await (
        await fetch(`${api}/train`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: "{}",
        })
      ).json()) as { links: { events: string } };
      const outcome = await tab.evaluate(
        (url) =>
          new Promise<string>((resolve) => {
            const socket = new WebSocket(url);
            socket.onopen = () => resolve("open");
            socket.onclose = (event) => resolve(`closed ${event.code}`);
          }),
        api.replace(/^http/, "ws") + started.links.events,
      );
      expect(outcome).toBe("closed 1006");
    } finally {
      await tab.close();
    }
  });
});
