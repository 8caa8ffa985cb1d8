// A worker written without the SDK, from docs/protocol.md and the `nats` client alone
// (test/fixtures/worker/foreign-worker.mjs), serves tasks published the way the engine publishes
// them: the protocol page is enough to join Baton from another language.
import { defaultPartitions } from "../../engine/nats/partitions.ts";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  headers,
  resultMessageId,
  subjects,
  type HeartbeatEnvelope,
  type ResultEnvelope,
} from "../../sdk/protocol.ts";
import { createEngineDouble, newExecutionId, type EngineDouble } from "../fixtures/worker/engine-double.ts";
import { useNatsServer } from "../helpers/nats-server.ts";
import { spawnProcess, type TestProcess } from "../helpers/processes.ts";

const server = useNatsServer();
let engine: EngineDouble;
let worker: TestProcess;
let workerId: string;

beforeAll(async () => {
  engine = await createEngineDouble(server().url);
  worker = spawnProcess(
    process.execPath,
    [join(import.meta.dirname, "../fixtures/worker/foreign-worker.mjs")],
    {
      name: "foreign-worker",
      env: { NATS_URL: server().url },
    },
  );
  workerId = (await worker.waitForLine(/"msg":"ready","worker":"([^"]+)"/))[1] ?? "";
});

afterAll(async () => {
  await worker?.kill("SIGKILL");
  await engine?.close();
});

/** The error of an execution's outcome (which must be a failure). */
async function errorOf(execution: string) {
  const { envelope } = await engine.waitForOutcome(execution);
  expect(envelope.type, JSON.stringify(envelope)).toBe("task.failed");
  return (envelope as Extract<ResultEnvelope, { type: "task.failed" }>).error;
}

describe("a worker written from docs/protocol.md alone", () => {
  it("reports started, then the output, with the protocol's headers and deduplication ids", async () => {
    const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const { envelope } = await engine.publishTask(
      { function: "shout", input: { text: "hello" }, step: "loud", run: 2, attempt: 3 },
      { headers: { [headers.traceparent]: traceparent } },
    );
    const outcome = await engine.waitForOutcome(envelope.execution);
    expect(outcome.envelope).toEqual({
      v: 2,
      type: "task.succeeded",
      execution: envelope.execution,
      step: "loud",
      run: 2,
      attempt: 3,
      worker: workerId,
      output: { text: "HELLO", worker: workerId },
    });
    expect(outcome.subject).toBe(subjects.result(envelope.execution, defaultPartitions));
    expect(outcome.headers?.get(headers.protocol)).toBe("2");
    expect(outcome.headers?.get(headers.traceparent)).toBe(traceparent);
    expect(outcome.headers?.get(headers.messageId)).toBe(
      resultMessageId(envelope.execution, "loud", 2, 3, "task.succeeded"),
    );
    const started = engine.events.find(
      (e) => e.envelope.execution === envelope.execution && e.envelope.type === "task.started",
    );
    expect(started?.seq).toBeLessThan(outcome.seq);
  });

  it("reports a function's own error code and retryability, and InputInvalid", async () => {
    const refused = await engine.publishTask({
      function: "refuse",
      input: { code: "Nope", retryable: true },
    });
    expect(await errorOf(refused.envelope.execution)).toMatchObject({
      code: "Nope",
      retryable: true,
    });
    const invalid = await engine.publishTask({ function: "shout", input: { text: 42 } });
    expect(await errorOf(invalid.envelope.execution)).toMatchObject({
      code: "InputInvalid",
      retryable: false,
    });
  });

  it("answers TaskInvalid to a task it cannot read, and Cancelled to a cancel", async () => {
    const execution = newExecutionId();
    await engine.publishRaw(
      "pure",
      "shout",
      JSON.stringify({
        v: 9,
        execution,
        workflow: "w",
        step: "s",
        run: 1,
        attempt: 1,
        function: "shout",
        reply: subjects.result(execution, defaultPartitions),
      }),
    );
    expect(await errorOf(execution)).toMatchObject({
      code: "TaskInvalid",
      retryable: false,
    });

    // A body of this version under a header of another is not read either.
    const mismatched = await engine.publishTask(
      { function: "shout", input: { text: "x" } },
      { headers: { [headers.protocol]: "9" } },
    );
    expect(await errorOf(mismatched.envelope.execution)).toMatchObject({
      code: "TaskInvalid",
      retryable: false,
    });

    const { envelope } = await engine.publishTask({ function: "linger", input: { ms: 60_000 } });
    await engine.waitForEvent(
      (e) => e.envelope.execution === envelope.execution && e.envelope.type === "task.started",
      10_000,
      "task.started",
    );
    await engine.cancel({ execution: envelope.execution, reason: "test" });
    expect(await errorOf(envelope.execution)).toMatchObject({
      code: "Cancelled",
      retryable: false,
    });
  });

  it("leaves the retry of a step run alone when a cancel names the attempt before it", async () => {
    const first = await engine.publishTask({ function: "linger", input: { ms: 60_000 }, attempt: 1 });
    const { execution } = first.envelope;
    await engine.waitForEvent(
      (e) => e.envelope.execution === execution && e.envelope.type === "task.started",
      10_000,
      "task.started of attempt 1",
    );
    await engine.cancel({ execution, step: "step-one", run: 1, attempt: 1, reason: "timed out" });
    expect(await errorOf(execution)).toMatchObject({ code: "Cancelled" });
    await engine.publishTask({ function: "linger", input: { ms: 10 }, execution, attempt: 2 });
    const second = await engine.waitForEvent(
      (e) =>
        e.envelope.execution === execution &&
        e.envelope.attempt === 2 &&
        (e.envelope.type === "task.succeeded" || e.envelope.type === "task.failed"),
      10_000,
      "the outcome of attempt 2",
    );
    expect(second.envelope.type, JSON.stringify(second.envelope)).toBe("task.succeeded");
  });

  it("heartbeats, and leaves cleanly on SIGTERM", async () => {
    const beats: HeartbeatEnvelope[] = [];
    let onFirst: () => void = () => {};
    let onLeaving: () => void = () => {};
    const first = new Promise<void>((resolve) => (onFirst = resolve));
    const leaving = new Promise<void>((resolve) => (onLeaving = resolve));
    const sub = engine.nc.subscribe(subjects.heartbeat(workerId), {
      callback: (_error, msg) => {
        const beat = msg.json<HeartbeatEnvelope>();
        beats.push(beat);
        onFirst();
        if (beat.leaving === true) onLeaving();
      },
    });
    await first;
    worker.child.kill("SIGTERM");
    await leaving;
    sub.unsubscribe();
    expect(await worker.waitForExit()).toEqual({ code: 0, signal: null });
    expect(beats[0]).toMatchObject({ v: 2, worker: workerId, concurrency: 4 });
    expect(beats[0]?.functions).toEqual([
      { name: "shout", lane: "pure" },
      { name: "refuse", lane: "pure" },
      { name: "linger", lane: "pure" },
    ]);
  });
});
