// Worker processes (sdk/worker/run-worker.ts, what `baton worker` runs) killed and drained: a task
// whose worker dies is finished by another, and SIGTERM lets the running attempt finish first.
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  streams,
  subjects,
  taskAckWaitMs,
  taskConsumer,
  type HeartbeatEnvelope,
  type ResultEnvelope,
} from "../../sdk/protocol.ts";
import { createEngineDouble, type EngineDouble } from "../fixtures/worker/engine-double.ts";
import { useNatsServer } from "../helpers/nats-server.ts";
import { spawnTsx, waitUntil, type TestProcess } from "../helpers/processes.ts";

const server = useNatsServer();
const dir = mkdtempSync(join(tmpdir(), "baton-worker-process-"));
const runWorker = join(import.meta.dirname, "../../sdk/worker/run-worker.ts");
const processFunctions = join(import.meta.dirname, "../fixtures/worker/process-functions.ts");
let engine: EngineDouble;
const workers: TestProcess[] = [];

beforeAll(async () => {
  engine = await createEngineDouble(server().url);
});
afterEach(async () => {
  // Only the workers: killAllProcesses() would take the nats-server down too.
  await Promise.all(workers.splice(0).map((worker) => worker.kill("SIGKILL")));
});
afterAll(async () => {
  await engine?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Starts a worker process and waits until it serves. */
async function startWorker(
  name: string,
  modules = [processFunctions],
  env: Record<string, string> = {},
): Promise<{ process: TestProcess; id: string }> {
  const process = spawnTsx(runWorker, modules, {
    name,
    env: { NATS_URL: server().url, BATON_WORKER_NAME: name, BATON_LOG_LEVEL: "info", ...env },
  });
  workers.push(process);
  const serving = await process.waitForLine(/"msg":"serving".*"worker":"([^"]+)"/).catch((error: unknown) => {
    throw new Error(`${String(error)}\n${process.output()}`);
  });
  return { process, id: serving[1] ?? "" };
}

function startedBy(execution: string) {
  return engine.waitForEvent(
    (e) => e.envelope.execution === execution && e.envelope.type === "task.started",
    20_000,
    `task.started of ${execution}`,
  );
}

describe("worker processes", () => {
  it("a task whose worker is killed mid-attempt is delivered again and finished by another worker", async () => {
    const first = await startWorker("first");
    const marker = join(dir, "block-once-marker");
    const { envelope } = await engine.publishTask({ function: "block-once", input: { marker } });
    expect((await startedBy(envelope.execution)).envelope.worker).toBe(first.id);
    // Killed mid-attempt: once its handler runs (the marker makes the next run the one that returns).
    await waitUntil("the handler to run", () => (existsSync(marker) ? true : undefined));
    // The second worker starts only now, so the task can reach it only by redelivery.
    const second = await startWorker("second");
    const killedAt = Date.now();
    await first.process.kill("SIGKILL");

    const outcome = await engine.waitForOutcome(envelope.execution, taskAckWaitMs + 10_000);
    const waited = Date.now() - killedAt;
    expect(outcome.envelope).toMatchObject({ type: "task.succeeded", worker: second.id });
    expect((outcome.envelope as Extract<ResultEnvelope, { type: "task.succeeded" }>).output).toEqual({
      worker: second.id,
      second: true,
    });
    // Redelivered after the ack wait (measured from the last progress heartbeat), not the 30 s default.
    expect(waited).toBeLessThan(taskAckWaitMs + 3_000);
    await waitUntil("the task to be acked", async () => {
      const info = await engine.jsm.consumers.info(streams.tasks, taskConsumer("pure", "block-once"));
      return info.num_ack_pending === 0 && info.num_pending === 0 ? true : undefined;
    });
  });

  it("SIGTERM drains: the running attempt finishes, no new task is taken, a leaving heartbeat, exit 0", async () => {
    const worker = await startWorker("drainer");
    const leaving = new Promise<HeartbeatEnvelope>((resolve) => {
      const sub = engine.nc.subscribe(subjects.heartbeat(worker.id), {
        callback: (_error, msg) => {
          const beat = msg.json<HeartbeatEnvelope>();
          if (beat.leaving !== true) return;
          sub.unsubscribe();
          resolve(beat);
        },
      });
    });
    await engine.nc.flush();
    const running = await engine.publishTask({ function: "slow", input: { ms: 1_500 } });
    await startedBy(running.envelope.execution);

    const since = worker.process.lineCount();
    worker.process.child.kill("SIGTERM");
    await worker.process.waitForLine(/"msg":"draining"/, { since });
    const later = await engine.publishTask({ function: "slow", input: { ms: 1 } });
    expect(await worker.process.waitForExit()).toEqual({ code: 0, signal: null });

    const outcome = await engine.waitForOutcome(running.envelope.execution, 1_000);
    expect(outcome.envelope).toMatchObject({ type: "task.succeeded", worker: worker.id });
    expect((await leaving).worker).toBe(worker.id);
    // The task published after SIGTERM waits in the stream for another worker.
    expect(engine.events.some((e) => e.envelope.execution === later.envelope.execution)).toBe(false);
    const info = await engine.jsm.consumers.info(streams.tasks, taskConsumer("pure", "slow"));
    expect(info.num_pending).toBe(1);
    expect(info.num_ack_pending).toBe(0);
    const kv = await engine.js.views.kv("baton_workers");
    const entry = await kv.get(worker.id);
    expect(entry === null || entry.operation !== "PUT").toBe(true);
  });

  it("gives back a task still running when the drain timeout runs out, for another worker to run at once", async () => {
    const impatient = await startWorker("impatient", [processFunctions], {
      BATON_WORKER_DRAIN_TIMEOUT_MS: "200",
    });
    const marker = join(dir, "drain-timeout-marker");
    const { envelope } = await engine.publishTask({
      function: "block-once",
      input: { marker },
      // Room for a loaded machine to stop one worker and start another (the default 30 s was
      // once used up, and the next worker answered Timeout).
      deadline: Date.now() + 5 * 60_000,
    });
    expect((await startedBy(envelope.execution)).envelope.worker).toBe(impatient.id);
    // The handler itself runs (its isolate may take a moment to start after task.started): the
    // marker it writes makes the next run of it the one that returns.
    await waitUntil("the handler to run", () => (existsSync(marker) ? true : undefined));
    impatient.process.child.kill("SIGTERM");
    expect(await impatient.process.waitForExit()).toEqual({ code: 0, signal: null });
    expect(impatient.process.output()).toMatch(/giving back the tasks still running/);
    // Handed back (nak), not left to run out its ack wait: the consumer counts it redelivered as
    // soon as the worker is gone (a task whose worker was killed counts 0 until its ack wait runs
    // out, 6 s after its last progress). Read at once, with a moment for the server to take the nak
    // in; no wall-clock bound on the worker start that follows.
    await waitUntil(
      "the task to be given back",
      async () => {
        const info = await engine.jsm.consumers.info(streams.tasks, taskConsumer("pure", "block-once"));
        return info.num_redelivered === 1 ? true : undefined;
      },
      { timeoutMs: 1_500, intervalMs: 20 },
    );
    const next = await startWorker("next");
    const outcome = await engine.waitForOutcome(envelope.execution, 60_000).catch((error: Error) => {
      const seen = engine.events
        .filter((event) => event.envelope.execution === envelope.execution)
        .map((event) => JSON.stringify(event.envelope));
      throw new Error(`${error.message}\n${seen.join("\n")}\n--- next:\n${next.process.output()}`, {
        cause: error,
      });
    });
    expect(outcome.envelope, JSON.stringify(outcome.envelope)).toMatchObject({
      type: "task.succeeded",
      worker: next.id,
    });
  }, 120_000);

  it("refuses to start, with a clear message, when a module exports no functions", async () => {
    const worker = spawnTsx(runWorker, [join(import.meta.dirname, "../fixtures/worker/engine-double.ts")], {
      env: { NATS_URL: server().url },
    });
    workers.push(worker);
    const exit = await worker.waitForExit();
    expect(exit.code).toBe(1);
    expect(worker.stderr()).toMatch(/exports no function definitions/);
  });
});
