/**
 * Least privilege, proven on a real nats-server started with exactly the shipped configuration
 * (deploy/nats/baton.conf, copied by the helper; passwords and the JetStream directory from its
 * environment variables). A real engine (`baton engine`), API (`run-api.ts --no-engine`) and
 * worker (`baton worker functions/examples.ts`) each connect with their role's user and run a
 * workflow with an effect step end to end. With the worker's credentials, purging BATON_EVENTS,
 * publishing a forged `execution.start` and writing another bucket are refused by NATS, and
 * nothing changed. `baton pool` runs as its own user and gives its workers the worker's
 * (BATON_POOL_WORKER_USER/BATON_POOL_WORKER_PASSWORD): it scales a deployed function from zero
 * and marks a crashing version unhealthy; with the pool's credentials, a purge, forged events,
 * a pull of a task, writes to other buckets' keys and a stream delete are refused. A bad
 * credential stops a process at start with one line naming the variable.
 */
import { defaultPartitions } from "../../engine/nats/partitions.ts";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, ErrorCode, type NatsConnection, type NatsError } from "nats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { streams, subjects, taskConsumerConfig } from "../../sdk/protocol.ts";
import { useNatsServer } from "../helpers/nats-server.ts";
import { killAllProcesses, spawnProcess, waitUntil, type TestProcess } from "../helpers/processes.ts";

const root = join(import.meta.dirname, "../..");
const batonBin = join(root, "bin/baton.mjs");
const sdk = join(root, "sdk/index.ts");
// Letters first: nats-server reads a `$VARIABLE` from the environment as a config value, and a
// value that looks like a number would not be a string.
/** The start a forger would publish on the engine's events: refused to every user but the engine's and the API's. */
const forgedStart = JSON.stringify({
  type: "execution.start",
  workflow: "guarded",
  revision: 1,
  input: { n: 1 },
  at: 1,
});
const password = () => `pw${randomBytes(12).toString("hex")}`;
const users = {
  engine: { NATS_USER: "baton-engine", NATS_PASSWORD: password() },
  api: { NATS_USER: "baton-api", NATS_PASSWORD: password() },
  worker: { NATS_USER: "baton-worker", NATS_PASSWORD: password() },
  pool: { NATS_USER: "baton-pool", NATS_PASSWORD: password() },
};
const server = useNatsServer({
  configFile: join(root, "deploy/nats/baton.conf"),
  storeDirVariable: "BATON_NATS_STORE_DIR",
  env: {
    BATON_ENGINE_PASSWORD: users.engine.NATS_PASSWORD,
    BATON_API_PASSWORD: users.api.NATS_PASSWORD,
    BATON_WORKER_PASSWORD: users.worker.NATS_PASSWORD,
    BATON_POOL_PASSWORD: users.pool.NATS_PASSWORD,
  },
});
/** The same configuration, where no engine has created anything yet. */
const freshServer = useNatsServer({
  configFile: join(root, "deploy/nats/baton.conf"),
  storeDirVariable: "BATON_NATS_STORE_DIR",
  env: {
    BATON_ENGINE_PASSWORD: users.engine.NATS_PASSWORD,
    BATON_API_PASSWORD: users.api.NATS_PASSWORD,
    BATON_WORKER_PASSWORD: users.worker.NATS_PASSWORD,
    BATON_POOL_PASSWORD: users.pool.NATS_PASSWORD,
  },
});
const effectDir = mkdtempSync(join(tmpdir(), "baton-creds-effects-"));
/** The function packages the pool runs, and its package cache. */
const packageDir = mkdtempSync(join(tmpdir(), "baton-creds-packages-"));
const tripleModule = `import { defineFunction } from ${JSON.stringify(sdk)};
export const triple = defineFunction({
  name: "triple",
  handler: (input: { n: number }, ctx) => ({ value: input.n * 3, worker: ctx.worker }),
});
`;
/** Loads in the API's check, and exits at once in a worker the pool starts: a crash at load. */
const crashAtLoadModule = `import { defineFunction } from ${JSON.stringify(sdk)};
if (process.env.BATON_WORKER_NAME?.startsWith("pool-")) process.exit(3);
export const brittle = defineFunction({ name: "brittle", handler: () => 1 });
`;
const workflow = `baton: v1
name: guarded
input: { type: object, required: [n], properties: { n: { type: integer } } }
steps:
  - name: charge
    call: effect-counter
    effect: true
    with: { n: "\${ $input.n }" }
  - name: total
    call: add
    with: { a: "\${ $input.n }", b: "\${ $steps.charge.output.count }" }
`;

let engine: TestProcess;
let base: string;
/** The engine's user: sees everything, to look at the streams. */
let admin: NatsConnection;
/** The worker's user, as a function's code could use it. */
let asWorker: NatsConnection;
/** The pool's user (connected by the test that needs it). */
let asPool: NatsConnection;
let pool: TestProcess | undefined;

/** The environment of a Baton process: the role's credentials and nothing inherited about NATS. */
function roleEnv(role: Record<string, string>, extra: Record<string, string> = {}) {
  return {
    NATS_URL: server().url,
    NATS_CREDS: undefined,
    NATS_TOKEN: undefined,
    NATS_NKEY: undefined,
    NATS_CA: undefined,
    NATS_CERT: undefined,
    NATS_KEY: undefined,
    ...role,
    ...extra,
  };
}

function startEngine(): TestProcess {
  return spawnProcess(process.execPath, [batonBin, "engine"], {
    name: "engine",
    cwd: root,
    env: roleEnv(users.engine, { BATON_ENGINE_ID: "creds-engine", BATON_LOG_LEVEL: "warn" }),
  });
}

async function api<T>(method: string, path: string, body?: { json?: unknown; yaml?: string }) {
  const headers: Record<string, string> = {};
  let text: string | undefined;
  if (body?.yaml !== undefined) {
    headers["content-type"] = "application/yaml";
    text = body.yaml;
  } else if (body?.json !== undefined) {
    headers["content-type"] = "application/json";
    text = JSON.stringify(body.json);
  }
  const response = await fetch(`${base}${path}`, {
    method,
    headers,
    ...(text === undefined ? {} : { body: text }),
  });
  const answer = await response.text();
  return { status: response.status, body: (answer === "" ? undefined : JSON.parse(answer)) as T };
}

async function startExecution(n: number): Promise<string> {
  const answer = await api<{ id: string }>("POST", "/v1/workflows/guarded/executions", { json: { n } });
  expect(answer.status, JSON.stringify(answer.body)).toBe(202);
  return answer.body.id;
}

async function result(id: string) {
  const answer = await api<{ status: string; output?: unknown; error?: unknown }>(
    "GET",
    `/v1/executions/${id}/result?wait=30s`,
  );
  expect(answer.status, JSON.stringify(answer.body)).toBe(200);
  return answer.body;
}

async function eventsState() {
  const info = await (await admin.jetstreamManager()).streams.info(streams.events);
  return { messages: info.state.messages, firstSeq: info.state.first_seq, lastSeq: info.state.last_seq };
}

/** Rejects with NATS's permission violation for publishing on `subject`. */
async function expectRefused(attempt: Promise<unknown>, subject: string, who = "worker") {
  const error = (await attempt.then(
    () => undefined,
    (reason: unknown) => reason,
  )) as NatsError | undefined;
  expect(error, `NATS let the ${who}'s user publish on ${subject}`).toBeDefined();
  expect(error?.code).toBe(ErrorCode.PermissionsViolation);
  expect(error?.message).toContain(`Permissions Violation for Publish to "${subject}"`);
}

beforeAll(async () => {
  engine = startEngine();
  await engine.waitForLine(/engine ready/, { timeoutMs: 60_000 });
  const apiProcess = spawnProcess(
    process.execPath,
    ["--import", "tsx", join(root, "engine/api/run-api.ts"), "--no-engine"],
    { name: "api", cwd: root, env: roleEnv(users.api, { BATON_LISTEN: "127.0.0.1:0" }) },
  );
  base = (
    await apiProcess.waitForLine(/"message":"api listening".*"url":"(http:\/\/[^"]+)"/, { timeoutMs: 60_000 })
  )[1]!;
  const worker = spawnProcess(process.execPath, [batonBin, "worker", join(root, "functions/examples.ts")], {
    name: "worker",
    cwd: root,
    env: roleEnv(users.worker, {
      BATON_EFFECT_DIR: effectDir,
      BATON_WORKER_NAME: "creds-worker",
      BATON_LOG_LEVEL: "info",
    }),
  });
  await worker.waitForLine(/"msg":"serving"/, { timeoutMs: 60_000 });
  admin = await connect({
    servers: server().url,
    user: users.engine.NATS_USER,
    pass: users.engine.NATS_PASSWORD,
  });
  asWorker = await connect({
    servers: server().url,
    user: users.worker.NATS_USER,
    pass: users.worker.NATS_PASSWORD,
  });
  const applied = await api("PUT", "/v1/workflows/guarded", { yaml: workflow });
  expect(applied.status, JSON.stringify(applied.body)).toBe(201);
  // Three processes start one after the other: room for a loaded 2-core machine.
}, 180_000);

afterAll(async () => {
  await asPool?.close();
  await asWorker?.close();
  await admin?.close();
  await killAllProcesses();
  rmSync(effectDir, { recursive: true, force: true });
  rmSync(packageDir, { recursive: true, force: true });
});

describe("the shipped nats-server configuration", () => {
  it("runs a workflow with an effect step end to end, every process with its role's user", async () => {
    const id = await startExecution(5);
    const done = await result(id);
    expect(done.status, JSON.stringify(done.error)).toBe("succeeded");
    expect(done.output).toBe(6); // 5 + the effect's first (and only) run
    expect(readdirSync(effectDir)).toHaveLength(1);
    // The API's user reads the history (an ordered consumer), the list and the workers bucket.
    const history = await api<{ entries?: unknown[] } | unknown[]>("GET", `/v1/executions/${id}/history`);
    expect(history.status, JSON.stringify(history.body)).toBe(200);
    expect(JSON.stringify(history.body)).toContain("charge");
    const listed = await api("GET", "/v1/executions");
    expect(listed.status, JSON.stringify(listed.body)).toBe(200);
    expect(JSON.stringify(listed.body)).toContain(id);
    const workers = await api("GET", "/v1/workers");
    expect(workers.status, JSON.stringify(workers.body)).toBe(200);
    expect(JSON.stringify(workers.body)).toContain("creds-worker");
  });

  it("refuses the worker's user a purge of BATON_EVENTS and a forged execution.start; nothing changes", async () => {
    // With the engine stopped, a start waits in BATON_EVENTS: something a purge would lose.
    await engine.kill("SIGTERM", 20_000);
    const waiting = await startExecution(7);
    const before = await eventsState();
    expect(before.messages).toBeGreaterThan(0);

    const jsm = await asWorker.jetstreamManager();
    await expectRefused(jsm.streams.purge(streams.events), `$JS.API.STREAM.PURGE.${streams.events}`);
    const forged = "forged-by-a-worker";
    await expectRefused(
      asWorker.jetstream().publish(subjects.events(forged, defaultPartitions), forgedStart),
      subjects.events(forged, defaultPartitions),
    );
    // Nor another bucket's keys (an execution record), nor deleting a stream.
    await expectRefused(
      asWorker.jetstream().publish(`$KV.baton_executions.${forged}`, "{}"),
      `$KV.baton_executions.${forged}`,
    );
    await expectRefused(jsm.streams.delete(streams.tasks), `$JS.API.STREAM.DELETE.${streams.tasks}`);

    expect(await eventsState()).toEqual(before);
    // The engine comes back: the waiting start runs, and the forged one never existed.
    engine = startEngine();
    await engine.waitForLine(/engine ready/, { timeoutMs: 60_000 });
    const done = await result(waiting);
    expect(done.status, JSON.stringify(done.error)).toBe("succeeded");
    expect(done.output).toBe(8);
    expect((await api("GET", `/v1/executions/${forged}`)).status).toBe(404);
  });
});

interface FunctionBody {
  health: { status: string; reason?: string };
  workers: { worker: string; version?: number }[];
}

async function getFunction(name: string): Promise<FunctionBody> {
  const answer = await api<FunctionBody>("GET", `/v1/functions/${name}`);
  expect(answer.status, JSON.stringify(answer.body)).toBe(200);
  return answer.body;
}

/** `baton function deploy FILE ...` through the API (which stores the package as its user). */
async function deploy(file: string, ...options: string[]) {
  const child = spawnProcess(process.execPath, [batonBin, "function", "deploy", file, ...options], {
    name: "baton function deploy",
    cwd: root,
    env: { BATON_URL: base, BATON_TOKEN: undefined },
  });
  const exit = await child.waitForExit(60_000);
  expect(exit.code, child.output()).toBe(0);
}

/** Fails on a pool tick or lease NATS refused, or on a NATS error of any kind in its log. */
function expectNoPoolErrors() {
  expect(pool?.output()).not.toMatch(/"msg":"pool tick failed"|Permissions Violation|could not mark/);
}

describe("the pool's user", () => {
  it(
    "runs a pool as baton-pool that scales a deployed function from zero; its workers run as baton-worker",
    { timeout: 180_000 },
    async () => {
      pool = spawnProcess(process.execPath, [batonBin, "pool"], {
        name: "pool",
        cwd: root,
        env: roleEnv(users.pool, {
          // The workers it starts run user code: the worker's user, never the pool's.
          BATON_POOL_WORKER_USER: users.worker.NATS_USER,
          BATON_POOL_WORKER_PASSWORD: users.worker.NATS_PASSWORD,
          BATON_POOL_TICK_MS: "200",
          BATON_PACKAGE_CACHE: join(packageDir, "cache"),
          BATON_LOG_LEVEL: "info",
        }),
      });
      await pool.waitForLine(
        /"msg":"pool started".*"workerCredential":"BATON_POOL_WORKER_USER, BATON_POOL_WORKER_PASSWORD"/,
        { timeoutMs: 60_000 },
      );
      expect(pool.output()).not.toMatch(/"level":"warn"/);
      writeFileSync(join(packageDir, "triple.ts"), tripleModule);
      await deploy(join(packageDir, "triple.ts"), "--idle", "30s");
      const applied = await api("PUT", "/v1/workflows/tripled", {
        yaml: `baton: v1
name: tripled
input: { type: object, required: [n], properties: { n: { type: integer } } }
steps:
  - name: triple
    call: triple
    with: { n: "\${ $input.n }" }
`,
      });
      expect(applied.status, JSON.stringify(applied.body)).toBe(201);
      // Deployed with nothing to do: the pool has started no worker (its log says so at each start).
      expect(pool.output()).not.toMatch(/"msg":"worker started".*"function":"triple"/);

      // A task waits and nobody serves triple: the pool starts a worker, which runs it.
      const started = await api<{ id: string }>("POST", "/v1/workflows/tripled/executions", {
        json: { n: 4 },
      });
      expect(started.status, JSON.stringify(started.body)).toBe(202);
      const done = await result(started.body.id);
      expect(done.status, JSON.stringify(done.error)).toBe("succeeded");
      const output = done.output as { value: number; worker: string };
      expect(output.value).toBe(12);
      expect(output.worker).toMatch(/^pool-/);
      expect(pool.output()).toMatch(/"msg":"worker started".*"function":"triple"/);
      expect(pool.output()).not.toMatch(/"msg":"worker crashed"/);
      const served = await getFunction("triple");
      expect(served.workers.map((worker) => worker.version)).toEqual([1]);
      expectNoPoolErrors();
    },
  );

  it(
    "marks a version whose workers keep crashing unhealthy, as baton-pool",
    { timeout: 120_000 },
    async () => {
      writeFileSync(join(packageDir, "brittle.ts"), crashAtLoadModule);
      // minScale 1: the pool starts a worker at once, and another after each crash.
      await deploy(join(packageDir, "brittle.ts"), "--min-scale", "1");
      const fn = await waitUntil(
        "brittle to be marked unhealthy",
        async () => {
          const found = await getFunction("brittle");
          return found.health.status === "unhealthy" ? found : undefined;
        },
        { timeoutMs: 90_000, intervalMs: 200 },
      );
      expect(fn.health.reason).toMatch(/3 workers of version 1 crashed within 300 s; the last: exit code 3/);
      expect(pool?.output()).toMatch(/"msg":"function marked unhealthy".*"function":"brittle"/);
      expectNoPoolErrors();
    },
  );

  it("refuses the pool's user a purge, forged events, a pull of a task, other keys and a stream delete; nothing changes", async () => {
    asPool = await connect({
      servers: server().url,
      user: users.pool.NATS_USER,
      pass: users.pool.NATS_PASSWORD,
    });
    await engine.kill("SIGTERM", 20_000);
    const waiting = await startExecution(11);
    const before = await eventsState();
    expect(before.messages).toBeGreaterThan(0);
    const jsm = await asPool.jetstreamManager();
    const refused = (attempt: Promise<unknown>, subject: string) => expectRefused(attempt, subject, "pool");

    await refused(jsm.streams.purge(streams.events), `$JS.API.STREAM.PURGE.${streams.events}`);
    const forged = "forged-by-a-pool";
    await refused(
      asPool.jetstream().publish(subjects.events(forged, defaultPartitions), forgedStart),
      subjects.events(forged, defaultPartitions),
    );
    // Nor a worker's report (the pool runs no task).
    await refused(
      asPool.jetstream().publish(`${subjects.events(forged, defaultPartitions)}.result`, "{}"),
      `${subjects.events(forged, defaultPartitions)}.result`,
    );
    // It reads the task consumers' state, and takes no task.
    const consumer = taskConsumerConfig("pure", "triple").durable_name;
    const next = `$JS.API.CONSUMER.MSG.NEXT.${streams.tasks}.${consumer}`;
    await refused(asPool.request(next, JSON.stringify({ batch: 1 }), { timeout: 5_000 }), next);
    // An execution record, a function's version (it writes health marks only), a stream delete.
    await refused(
      asPool.jetstream().publish(`$KV.baton_executions.${forged}`, "{}"),
      `$KV.baton_executions.${forged}`,
    );
    await refused(
      asPool.jetstream().publish("$KV.baton_functions.fn.triple", "{}"),
      "$KV.baton_functions.fn.triple",
    );
    await refused(jsm.streams.delete(streams.tasks), `$JS.API.STREAM.DELETE.${streams.tasks}`);

    expect(await eventsState()).toEqual(before);
    expect((await getFunction("triple")).health.status).toBe("healthy");
    engine = startEngine();
    await engine.waitForLine(/engine ready/, { timeoutMs: 60_000 });
    const done = await result(waiting);
    expect(done.status, JSON.stringify(done.error)).toBe("succeeded");
    expect(done.output).toBe(12);
    expect((await api("GET", `/v1/executions/${forged}`)).status).toBe(404);
  });
});

describe("a bad credential", () => {
  async function failsAtStart(args: string[], env: Record<string, string | undefined>) {
    const child = spawnProcess(process.execPath, [batonBin, ...args], { name: args[0], cwd: root, env });
    const exit = await child.waitForExit(30_000);
    expect(exit.code, child.output()).not.toBe(0);
    expect(exit.code, child.output()).not.toBeNull();
    // One line, no stack trace.
    expect(child.stderr(), child.output()).not.toMatch(/^\s+at /m);
    return child.stderr();
  }

  it("a wrong password stops the engine with a message naming the variables", async () => {
    const stderr = await failsAtStart(["engine"], roleEnv({ ...users.engine, NATS_PASSWORD: "pw-wrong" }));
    expect(stderr).toMatch(
      /^baton engine: NATS at nats:\/\/127\.0\.0\.1:\d+ refused the credentials of NATS_USER\/NATS_PASSWORD/m,
    );
  });

  it("a wrong password stops the API process with a message naming the variables", async () => {
    const child = spawnProcess(
      process.execPath,
      ["--import", "tsx", join(root, "engine/api/run-api.ts"), "--no-engine"],
      {
        name: "api",
        cwd: root,
        env: roleEnv({ ...users.api, NATS_PASSWORD: "pw-wrong" }, { BATON_LISTEN: "127.0.0.1:0" }),
      },
    );
    const exit = await child.waitForExit(30_000);
    expect(exit.code, child.output()).toBe(2);
    expect(child.stderr()).toMatch(
      /^run-api: NATS at .* refused the credentials of NATS_USER\/NATS_PASSWORD/m,
    );
    expect(child.stderr(), child.output()).not.toMatch(/^\s+at /m);
  });

  it("no credentials at all: the engine says which variables to set", async () => {
    const stderr = await failsAtStart(["engine"], roleEnv({}));
    expect(stderr).toMatch(
      /refused a connection without credentials.*NATS_CREDS, NATS_USER and NATS_PASSWORD/,
    );
  });

  it("a missing creds file stops a worker with a message naming NATS_CREDS", async () => {
    const missing = join(tmpdir(), `no-such-${randomBytes(4).toString("hex")}.creds`);
    const stderr = await failsAtStart(
      ["worker", join(root, "functions/examples.ts")],
      roleEnv({}, { NATS_CREDS: missing }),
    );
    expect(stderr).toContain(`NATS_CREDS="${missing}" does not exist`);
  });

  it("a worker started before any engine says its user may not create the streams", async () => {
    const stderr = await failsAtStart(["worker", join(root, "functions/examples.ts")], {
      ...roleEnv(users.worker),
      NATS_URL: freshServer().url,
    });
    expect(stderr).toMatch(
      /^baton worker: NATS refused the worker connected as NATS_USER\/NATS_PASSWORD: Permissions Violation for Publish to "\$JS\.API\.STREAM\.CREATE\.BATON_(TASKS|EVENTS)".*start the engine first/m,
    );
  });

  it("a user without a password stops the worker before it connects", async () => {
    const stderr = await failsAtStart(
      ["worker", join(root, "functions/examples.ts")],
      roleEnv({ NATS_USER: "baton-worker" }),
    );
    expect(stderr).toContain("NATS_USER is set but NATS_PASSWORD is not");
  });
});
