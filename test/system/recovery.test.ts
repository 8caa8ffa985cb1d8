/**
 * Durability with real processes: engine replicas (`baton engine`) and function workers
 * (`baton worker functions/examples.ts`) over a real nats-server. Engines, workers
 * and the server itself are killed mid-run with many executions in flight; every execution must
 * finish with the right output, and every effect must have happened exactly once.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type NatsConnection } from "nats";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { Executions } from "../../engine/orchestrator/executions.ts";
import { isEnded } from "../../engine/orchestrator/execution-record.ts";
import { duplicateWindowMs, streams, subjects, type AttemptStartedEnvelope } from "../../sdk/protocol.ts";
import { useNatsServer } from "../helpers/nats-server.ts";
import { killAllProcesses, spawnProcess, waitUntil, type TestProcess } from "../helpers/processes.ts";

const root = join(import.meta.dirname, "../..");
const server = useNatsServer();
const effectDir = mkdtempSync(join(tmpdir(), "baton-effects-"));
let nc: NatsConnection;
let executions: Executions;
/** The engine and worker that live through every test: their output goes with a timeout. */
const base: TestProcess[] = [];

function env(): NodeJS.ProcessEnv {
  return { ...process.env, NATS_URL: server().url, BATON_EFFECT_DIR: effectDir, BATON_LOG_LEVEL: "warn" };
}

async function startEngine(name: string, extraEnv: NodeJS.ProcessEnv = {}): Promise<TestProcess> {
  const engine = spawnProcess(process.execPath, [join(root, "bin/baton.mjs"), "engine"], {
    name,
    env: { ...env(), BATON_ENGINE_ID: name, ...extraEnv },
  });
  await engine.waitForLine(/engine ready/);
  return engine;
}

async function startWorker(name: string): Promise<TestProcess> {
  const worker = spawnProcess(
    process.execPath,
    [join(root, "bin/baton.mjs"), "worker", join(root, "functions/examples.ts")],
    {
      name,
      env: { ...env(), BATON_WORKER_NAME: name, BATON_LOG_LEVEL: "info" },
    },
  );
  await worker.waitForLine(/serving/);
  return worker;
}

const workflow = `baton: v1
name: durable-chain
input: { type: object, required: [n], properties: { n: { type: integer } } }
steps:
  - name: first
    call: sleep
    with: { ms: 150 }
  - name: charge
    call: effect-counter
    effect: true
    with: { n: "\${ $input.n }" }
  - name: nap
    wait: 200ms
  - name: last
    call: add
    with: { a: "\${ $input.n }", b: 1000 }
`;

beforeAll(async () => {
  nc = await connect({ servers: server().url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  executions = await Executions.connect(nc);
  await executions.apply(workflow);
  // One engine and one worker that live through every test; tests add (and kill) their own.
  base.push(await startEngine("engine-base"), await startWorker("worker-base"));
});

afterAll(async () => {
  await killAllProcesses();
  await nc?.close();
  rmSync(effectDir, { recursive: true, force: true });
});

async function startMany(count: number, offset: number): Promise<Map<string, number>> {
  const started = new Map<string, number>();
  for (let n = offset; n < offset + count; n++)
    started.set((await executions.start("durable-chain", { n })).id, n);
  return started;
}

/** Waits for every execution to end; returns them. Reads through reconnects of the test's own connection. */
async function waitForAll(ids: Iterable<string>, timeoutMs = 60_000) {
  const pending = new Set(ids);
  const records = new Map<string, Awaited<ReturnType<Executions["get"]>>>();
  await waitUntil(
    `${pending.size} executions to end`,
    async () => {
      for (const id of [...pending]) {
        const record = await executions.get(id).catch(() => undefined);
        if (record && isEnded(record.status)) {
          records.set(id, record);
          pending.delete(id);
        }
      }
      return pending.size === 0 ? true : undefined;
    },
    { timeoutMs, intervalMs: 100 },
  ).catch((error: Error) => {
    const tails = base.map((child) => `--- ${child.output().split("\n").slice(-30).join("\n")}`);
    throw new Error(`${error.message}; ${pending.size} still running\n${tails.join("\n")}`, { cause: error });
  });
  return records;
}

function expectAllRight(
  started: Map<string, number>,
  records: Awaited<ReturnType<typeof waitForAll>>,
  { effectsAtMostOnce = true } = {},
) {
  for (const [id, n] of started) {
    const record = records.get(id)!;
    expect(record.status, `${id}: ${JSON.stringify(record.error)}`).toBe("succeeded");
    expect(record.output).toBe(n + 1000);
    // The effect ran exactly once for this execution's charge step.
    const file = join(effectDir, encodeURIComponent(`${id}/charge/2`));
    const runs = readFileSync(file, "utf8").trim().split("\n");
    if (effectsAtMostOnce) expect(runs, `effect of ${id}: ${runs.join(" | ")}`).toHaveLength(1);
    else expect(runs.length, `effect of ${id}`).toBeGreaterThanOrEqual(1);
  }
}

/**
 * An ended execution's history once its last write's records are published (just after the write
 * the record shows), or what there is after a while: a gap then shows in the test's assertion.
 */
async function historyOf(id: string, historySeq: number) {
  let history = await executions.history(id);
  await waitUntil(`${id}'s history to reach ${historySeq}`, async () => {
    history = await executions.history(id);
    return history.at(-1)?.seq === historySeq ? true : undefined;
  }).catch(() => undefined);
  return history;
}

/** The history messages of an execution as stored: their first and last record numbers. */
async function rawHistory(id: string): Promise<string> {
  const jsm = await nc.jetstreamManager();
  const parts: string[] = [];
  let seq = 0;
  for (;;) {
    const message = await jsm.streams
      .getMessage(streams.history, { next_by_subj: subjects.history(id), seq: seq + 1 } as never)
      .catch(() => undefined);
    if (!message) break;
    const entries = message.json<{ seq: number }[]>();
    parts.push(`#${message.seq}:${entries[0]?.seq}-${entries.at(-1)?.seq}`);
    seq = message.seq;
  }
  return parts.join(" ");
}

describe("recovery", () => {
  it("finishes everything when an engine is killed with SIGKILL mid-run", async () => {
    const doomed = await startEngine("engine-doomed");
    const started = await startMany(30, 0);
    // Kill once work is under way: some executions past their effect, some not.
    await waitUntil("some effects to have run", () =>
      readdirSync(effectDir).length >= 5 ? true : undefined,
    );
    await doomed.kill("SIGKILL");
    const records = await waitForAll(started.keys());
    expectAllRight(started, records);
  });

  it("hands a killed worker's tasks to another worker within seconds", async () => {
    // Workers announce the attempts they take on core NATS: the test hears the doomed one start.
    let doomedStarted = false;
    const announced = nc.subscribe(subjects.allAttempts, {
      callback: (_error, message) => {
        if (message.json<AttemptStartedEnvelope>().worker.includes("worker-doomed")) doomedStarted = true;
      },
    });
    await nc.flush();
    onTestFinished(() => announced.unsubscribe());
    const doomed = await startWorker("worker-doomed");
    const started = await startMany(20, 100);
    await waitUntil("the doomed worker to be running tasks", () => (doomedStarted ? true : undefined));
    await doomed.kill("SIGKILL");
    const records = await waitForAll(started.keys(), 60_000);
    expectAllRight(started, records);
  }, 90_000);

  it("finishes everything when nats-server restarts mid-run", async () => {
    const started = await startMany(20, 200);
    await waitUntil("some effects of this batch to have run", () =>
      [...started.keys()].some((id) => readdirSync(effectDir).includes(encodeURIComponent(`${id}/charge/2`)))
        ? true
        : undefined,
    );
    // A restart as an operator does it: the server stops (flushing what it acknowledged) and comes back.
    await server().restart();
    const records = await waitForAll(started.keys());
    expectAllRight(started, records);
  });

  it("finishes everything when nats-server is killed with SIGKILL mid-run", async () => {
    const started = await startMany(20, 300);
    await waitUntil("some effects of this batch to have run", () =>
      [...started.keys()].some((id) => readdirSync(effectDir).includes(encodeURIComponent(`${id}/charge/2`)))
        ? true
        : undefined,
    );
    await server().kill();
    await server().restart();
    const records = await waitForAll(started.keys());
    // nats-server 2.9 acknowledges writes before they reach the disk, so a SIGKILL can lose the
    // effect ledger's last entries and an effect may run again: that is what idempotency keys
    // are for. Every execution still ends right, and every effect happened at least once.
    expectAllRight(started, records, { effectsAtMostOnce: false });
  });

  it("finishes everything, no effect twice, after NATS was away longer than the duplicate window", async () => {
    // JetStream's duplicate window is 5 minutes; this test makes it 1 s on the streams that take
    // the engine's sends (an outage of 6 minutes would make the suite too slow), so every resend
    // after the outage is a message JetStream no longer recognises: receivers must know it by
    // its identity (the attempt, the timer token, the item, the history seq).
    const jsm = await nc.jetstreamManager();
    const window = async (ms: number) => {
      for (const stream of [streams.events, streams.tasks, streams.history]) {
        const { config } = await jsm.streams.info(stream);
        await jsm.streams.update(stream, { ...config, duplicate_window: ms * 1_000_000 });
      }
    };
    await window(1_000);
    onTestFinished(() => window(duplicateWindowMs));
    const started = await startMany(30, 900);
    await waitUntil("some effects of this batch to have run", () =>
      [...started.keys()].some((id) => readdirSync(effectDir).includes(encodeURIComponent(`${id}/charge/2`)))
        ? true
        : undefined,
    );
    await server().restart(4_000);
    const records = await waitForAll(started.keys(), 90_000);
    expectAllRight(started, records);
    for (const id of started.keys()) {
      const seqs = (await historyOf(id, records.get(id)!.historySeq)).map((entry) => entry.seq);
      expect(seqs, `history of ${id}: ${await rawHistory(id)}`).toEqual(seqs.map((_, index) => index + 1));
    }
  }, 150_000);

  // The engine dies (SIGKILL to itself, engine/orchestrator/crash-points.ts) at a named point of
  // applying events: after the record is written and before anything is sent; with the commands
  // sent but not the history; with everything sent but the events not acknowledged. Another
  // engine carries on from what JetStream holds.
  it.each(["after-write", "mid-send", "before-ack"])(
    "loses nothing and runs no effect twice when an engine dies at %s",
    async (point) => {
      const offset = { "after-write": 600, "mid-send": 700, "before-ack": 800 }[point]!;
      // The 40th time it passes the point: well into the run, with effects before and after.
      const doomed = await startEngine(`engine-crash-${point}`, { BATON_TEST_CRASH_AT: `${point}:40` });
      // It applies only the events of its share of the partitions, from when it holds them: more
      // executions, twenty at a time, until it has passed the point often enough to die there.
      const started = new Map<string, number>();
      for (let round = 0; doomed.exit === undefined && round < 10; round++) {
        for (const [id, n] of await startMany(20, offset + round * 20)) started.set(id, n);
        await doomed.waitForExit(3_000).catch(() => undefined);
      }
      const exit = await doomed.waitForExit(60_000);
      expect(exit.signal, `the engine died at ${point}`).toBe("SIGKILL");
      expect(doomed.stderr()).toContain(`"point":"${point}"`);
      const records = await waitForAll(started.keys());
      expectAllRight(started, records);
      // The history is whole: every execution's records are numbered 1..n with no gap.
      for (const id of started.keys()) {
        const seqs = (await historyOf(id, records.get(id)!.historySeq)).map((entry) => entry.seq);
        expect(seqs, `history of ${id}`).toEqual(seqs.map((_, index) => index + 1));
        expect(seqs.length).toBe(records.get(id)!.historySeq);
      }
    },
    150_000,
  );
});
