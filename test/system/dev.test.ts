/**
 * `baton dev` as a user runs it, from the project's directory, with its data in a temporary
 * BATON_DATA_DIR, the API and NATS on free ports: it comes up and prints where, with the
 * functions of baton.yaml deployed as packages; `hello` runs through the CLI on the pool's workers; SIGINT or SIGTERM stops it with no process left behind; the next start keeps
 * the data; a second `baton dev` on the same data is refused; and the children of a `baton dev`
 * killed outright (SIGKILL) are stopped by the next start.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { killAllProcesses, spawnProcess, type TestProcess } from "../helpers/processes.ts";

const root = join(import.meta.dirname, "../..");
const baton = join(root, "bin/baton.mjs");
const dataDir = mkdtempSync(join(tmpdir(), "baton-dev-"));
/** Every pid a `baton dev` of this file reported, to check (and, on failure, clean up). */
const seenPids = new Set<number>();

interface RunningDev {
  process: TestProcess;
  apiUrl: string;
  /** `baton dev` itself, its nats-server and its worker. */
  pids: { dev: number; nats: number; worker: number };
}

async function startDev(): Promise<RunningDev> {
  const dev = spawnProcess(process.execPath, [baton, "dev"], {
    name: "baton dev",
    cwd: root,
    env: {
      BATON_DATA_DIR: dataDir,
      BATON_LISTEN: "127.0.0.1:0",
      BATON_NATS_PORT: "0",
      NATS_URL: undefined,
      // Credentials for a NATS of one's own, which baton dev's own server does not want: a
      // missing creds file would stop any process that used it.
      NATS_CREDS: join(dataDir, "no-such.creds"),
      BATON_LOG_LEVEL: "warn",
    },
  });
  await dev.waitForLine(/^Baton dev is up\.$/, { timeoutMs: 90_000 });
  expect(dev.stderr()).toMatch(/NATS_CREDS ignored: they are for a NATS of your own/);
  const output = dev.stdout();
  const apiUrl = /^ {2}API\s+(http:\/\/127\.0\.0\.1:\d+)/m.exec(output)?.[1];
  const nats = Number(/nats-server pid (\d+)/.exec(output)?.[1]);
  const worker = Number(/worker pid (\d+)/.exec(output)?.[1]);
  expect(apiUrl, output).toBeDefined();
  const pids = { dev: dev.pid, nats, worker };
  for (const pid of Object.values(pids)) {
    expect(Number.isInteger(pid) && pid > 0, output).toBe(true);
    seenPids.add(pid);
  }
  return { process: dev, apiUrl: apiUrl!, pids };
}

async function cli(apiUrl: string, args: readonly string[]) {
  const child = spawnProcess(process.execPath, [baton, ...args], {
    name: `baton ${args[0] ?? ""}`,
    env: { BATON_URL: apiUrl, BATON_TOKEN: undefined },
  });
  const exit = await child.waitForExit(60_000);
  return { code: exit.code, stdout: child.stdout(), stderr: child.stderr() };
}

/** Whether `pid` runs: it answers signal 0 and is not a zombie waiting to be reaped. */
function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return true;
  }
}

afterAll(async () => {
  // Only if a test failed half-way: nothing of ours may outlive the file. A baton dev still
  // running stops its children itself on SIGTERM; the children of one that could not are in
  // its dev.json.
  await killAllProcesses();
  const recorded = readRecordedPids();
  for (const pid of [...seenPids, ...recorded]) {
    if (!isRunning(pid)) continue;
    for (const target of [-pid, pid]) {
      try {
        process.kill(target, "SIGKILL");
      } catch {
        // Not a group leader, or gone.
      }
    }
  }
  rmSync(dataDir, { recursive: true, force: true });
});

function readRecordedPids(): number[] {
  try {
    const record = JSON.parse(readFileSync(join(dataDir, "dev.json"), "utf8")) as {
      children: { pid: number }[];
    };
    return record.children.map((child) => child.pid);
  } catch {
    return [];
  }
}

// Each test starts baton dev once or twice: NATS, the engine, the API, 40-odd workflows, a worker.
const timeout = 180_000;

describe("baton dev", () => {
  let executionId: string;

  it(
    "comes up, runs hello, and stops on SIGINT with every child gone",
    async () => {
      const dev = await startDev();
      const banner = dev.process.stdout();
      expect(banner).toContain(`NATS       nats://127.0.0.1:`);
      expect(banner).toContain(`JetStream data in ${dataDir}`);
      // The functions baton.yaml declares are deployed as packages, for the pool to run; a plain
      // worker serves every other module of functions/.
      const declared = (
        parse(readFileSync(join(root, "baton.yaml"), "utf8")) as { functions: { module: string }[] }
      ).functions.map((fn) => fn.module);
      const modules = readdirSync(join(root, "functions"))
        .filter((file) => file.endsWith(".ts"))
        .sort()
        .map((file) => `functions/${file}`)
        .filter((module) => !declared.includes(module));
      expect(modules.length).toBeGreaterThan(0);
      expect(banner).toContain(`workers    ${modules.join(" ")}  (worker pid`);
      expect(banner).toMatch(
        /^ {2}packages {3}.*\becho@\d+ .*\badd@\d+ .*\(from baton\.yaml; the pool starts/m,
      );
      expect(banner).toMatch(/workflows {2}\d+ submitted from workflows\//);
      expect(banner).toContain(
        `BATON_URL=${dev.apiUrl} npm run baton -- run hello --input '{"name":"ana"}' --wait`,
      );

      // The console and the example route of workflows/train-model.yaml are served.
      expect(banner).toContain(`console    ${dev.apiUrl}/ui`);
      const consolePage = await fetch(`${dev.apiUrl}/ui`);
      expect(consolePage.status).toBe(200);
      expect(await consolePage.text()).toContain('<script type="module" src="/ui/app.js">');
      expect((await fetch(`${dev.apiUrl}/ui/app.js`)).status).toBe(200);
      const train = await fetch(`${dev.apiUrl}/train`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ epochs: 2, msPerEpoch: 10 }),
      });
      expect(train.status).toBe(202);

      const run = await cli(dev.apiUrl, ["run", "hello", "--input", '{"name":"ana"}', "--wait"]);
      expect(run.stderr).toContain("ExecutionSucceeded");
      expect(run.code).toBe(0);
      expect(JSON.parse(run.stdout)).toEqual({ greeting: "hello, ana!", sum: 5, napped: true });
      executionId = /started hello: (\S+)/.exec(run.stderr)![1]!;
      // hello's functions ran on workers the pool started for their packages (a worker's id
      // carries its pid); they stop with baton dev.
      const echo = (await (await fetch(`${dev.apiUrl}/v1/functions/echo`)).json()) as {
        workers: { worker: string }[];
      };
      const poolPids = echo.workers.map((entry) => Number(/-(\d+)-[0-9a-f]+$/.exec(entry.worker)?.[1]));
      expect(poolPids.length, JSON.stringify(echo)).toBeGreaterThan(0);
      for (const pid of poolPids) expect(pid !== dev.pids.worker && isRunning(pid), `pid ${pid}`).toBe(true);

      const exit = await dev.process.kill("SIGINT", 30_000);
      expect(exit).toEqual({ code: 0, signal: null });
      expect(dev.process.stderr()).toContain(`the data stays in ${dataDir}`);
      for (const pid of [...Object.values(dev.pids), ...poolPids])
        expect(isRunning(pid), `pid ${pid}`).toBe(false);
    },
    timeout,
  );

  it(
    "keeps the data across a restart, refuses a second dev on it, and stops on SIGTERM",
    async () => {
      const dev = await startDev();
      const got = await cli(dev.apiUrl, ["get", executionId, "--json"]);
      expect(got.code).toBe(0);
      expect(JSON.parse(got.stdout)).toMatchObject({
        id: executionId,
        workflow: "hello",
        status: "succeeded",
        output: { greeting: "hello, ana!", sum: 5, napped: true },
      });

      const second = spawnProcess(process.execPath, [baton, "dev"], {
        name: "second baton dev",
        cwd: root,
        env: {
          BATON_DATA_DIR: dataDir,
          BATON_LISTEN: "127.0.0.1:0",
          BATON_NATS_PORT: "0",
          NATS_URL: undefined,
        },
      });
      expect((await second.waitForExit(60_000)).code).toBe(1);
      expect(second.stderr()).toContain(`another baton dev (pid ${dev.pids.dev}) is using ${dataDir}`);

      const exit = await dev.process.kill("SIGTERM", 30_000);
      expect(exit).toEqual({ code: 0, signal: null });
      for (const pid of Object.values(dev.pids)) expect(isRunning(pid), `pid ${pid}`).toBe(false);
    },
    timeout,
  );

  it(
    "stops what a killed baton dev left running, at the next start",
    async () => {
      const killed = await startDev();
      // SIGKILL leaves baton dev no chance to stop its children: they run on, orphaned.
      await killed.process.kill("SIGKILL");
      expect(isRunning(killed.pids.nats)).toBe(true);
      expect(isRunning(killed.pids.worker)).toBe(true);

      const dev = await startDev();
      expect(dev.process.stderr()).toContain(`stopping nats-server (pid ${killed.pids.nats})`);
      expect(isRunning(killed.pids.nats)).toBe(false);
      expect(isRunning(killed.pids.worker)).toBe(false);
      const got = await cli(dev.apiUrl, ["get", executionId]);
      expect(got.stdout).toContain("status:    succeeded");

      expect(await dev.process.kill("SIGINT", 30_000)).toEqual({ code: 0, signal: null });
      for (const pid of Object.values(dev.pids)) expect(isRunning(pid), `pid ${pid}`).toBe(false);
    },
    timeout,
  );
});
