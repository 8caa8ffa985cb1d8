// The worker kit against a real nats-server, with the test in the engine's seat: it publishes
// task envelopes as protocol.ts describes them and reads the reports from the events stream.
import { defaultPartitions } from "../../engine/nats/partitions.ts";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Msg } from "nats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as examples from "../../functions/examples.ts";
import noop from "../../functions/noop.ts";
import {
  headers,
  resultMessageId,
  streams,
  subjects,
  taskConsumer,
  type HeartbeatEnvelope,
  type JsonValue,
  type ResultEnvelope,
  type TaskEnvelope,
  type WireError,
} from "../../sdk/protocol.ts";
import { serve, type WorkerHandle } from "../../sdk/index.ts";
import type { LogFields, Logger } from "../../sdk/worker/logger.ts";
import { createEngineDouble, newExecutionId, type EngineDouble } from "../fixtures/worker/engine-double.ts";
import * as fixtures from "../fixtures/worker/functions.ts";
import { useNatsServer } from "../helpers/nats-server.ts";
import { waitUntil } from "../helpers/processes.ts";

const server = useNatsServer();
const markerDir = mkdtempSync(join(tmpdir(), "baton-worker-test-"));
const logLines: { level: string; message: string; fields: LogFields | undefined }[] = [];
const captureLogger: Logger = {
  debug: (message, fields) => logLines.push({ level: "debug", message, fields }),
  info: (message, fields) => logLines.push({ level: "info", message, fields }),
  warn: (message, fields) => logLines.push({ level: "warn", message, fields }),
  error: (message, fields) => logLines.push({ level: "error", message, fields }),
};

const PURE_SLOTS = 3;
const EFFECT_SLOTS = 2;
let engine: EngineDouble;
let worker: WorkerHandle;

beforeAll(async () => {
  process.env.BATON_TEST_MARKER_DIR = markerDir; // Isolates copy the environment when they start.
  engine = await createEngineDouble(server().url);
  worker = await serve({
    servers: server().url,
    functions: [...Object.values(examples), ...Object.values(fixtures), noop],
    concurrency: PURE_SLOTS,
    effectConcurrency: EFFECT_SLOTS,
    isolateHeapMb: 64,
    graceMs: 300,
    name: "in-process",
    logger: captureLogger,
  });
});

afterAll(async () => {
  await worker?.close();
  await engine?.close();
  rmSync(markerDir, { recursive: true, force: true });
});

function succeeded(event: { envelope: ResultEnvelope }): unknown {
  expect(event.envelope.type, JSON.stringify(event.envelope)).toBe("task.succeeded");
  return (event.envelope as Extract<ResultEnvelope, { type: "task.succeeded" }>).output;
}

function failed(event: { envelope: ResultEnvelope }): WireError {
  expect(event.envelope.type, JSON.stringify(event.envelope)).toBe("task.failed");
  return (event.envelope as Extract<ResultEnvelope, { type: "task.failed" }>).error;
}

/** Runs `fn` with `input` and waits for its outcome. */
async function runTask(fn: string, input: JsonValue, extra: { deadline?: number; effect?: boolean } = {}) {
  const { envelope } = await engine.publishTask({ function: fn, input, ...extra });
  return engine.waitForOutcome(envelope.execution);
}

/** The worker still serves: an echo comes back. */
async function expectStillServing(): Promise<void> {
  expect(succeeded(await runTask("echo", { still: "serving" }))).toEqual({ still: "serving" });
}

describe("serving functions", () => {
  it("runs a function and reports started, then succeeded, with the protocol's headers", async () => {
    const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const { envelope } = await engine.publishTask(
      { function: "echo", input: { hello: "world" }, step: "greet", run: 4, attempt: 2 },
      { headers: { [headers.traceparent]: traceparent } },
    );
    const outcome = await engine.waitForOutcome(envelope.execution);
    expect(succeeded(outcome)).toEqual({ hello: "world" });
    expect(outcome.envelope).toMatchObject({
      v: 2,
      execution: envelope.execution,
      step: "greet",
      run: 4,
      attempt: 2,
    });
    expect(outcome.envelope.worker).toBe(worker.id);
    expect(outcome.subject).toBe(subjects.result(envelope.execution, defaultPartitions));
    expect(outcome.headers?.get(headers.protocol)).toBe("2");
    expect(outcome.headers?.get(headers.execution)).toBe(envelope.execution);
    expect(outcome.headers?.get(headers.run)).toBe("4");
    expect(outcome.headers?.get(headers.traceparent)).toBe(traceparent);
    expect(outcome.headers?.get(headers.messageId)).toBe(
      resultMessageId(envelope.execution, "greet", 4, 2, "task.succeeded"),
    );

    const started = engine.events.find(
      (e) => e.envelope.execution === envelope.execution && e.envelope.type === "task.started",
    );
    expect(started, "task.started is announced").toBeDefined();
    // Announced on core NATS (never stored); the result carries the start for the engine.
    expect(started!.subject).toBe(subjects.attempts(envelope.execution));
    expect(started!.receivedAt).toBeLessThanOrEqual(outcome.receivedAt);
    const startedAt = (outcome.envelope as { startedAt?: number }).startedAt;
    expect(startedAt).toBe((started!.envelope as { startedAt: number }).startedAt);
  });

  it("gives the handler its context, and its log lines carry the attempt", async () => {
    const { envelope } = await engine.publishTask({
      function: "context",
      effect: true,
      idempotencyKey: "key-123",
      step: "ctx-step",
    });
    const output = succeeded(await engine.waitForOutcome(envelope.execution)) as Record<string, unknown>;
    expect(output).toMatchObject({
      executionId: envelope.execution,
      workflow: "test-workflow",
      step: "ctx-step",
      run: 1,
      attempt: 1,
      idempotencyKey: "key-123",
      effect: true,
      function: "context",
      worker: worker.id,
      deadline: envelope.deadline,
      isAborted: false,
      hasLogger: true,
    });
    const line = logLines.find(
      (l) => l.message === "context asked" && l.fields?.execution === envelope.execution,
    );
    expect(line?.fields).toMatchObject({ step: "ctx-step", attempt: 1, function: "context" });
  });

  it("reports a BatonError with its code, retryability and details", async () => {
    const error = failed(
      await runTask("fail-with", {
        code: "QuotaExceeded",
        message: "too many",
        retryable: true,
        details: { n: 3 },
      }),
    );
    expect(error).toEqual({ code: "QuotaExceeded", message: "too many", retryable: true, details: { n: 3 } });
    expect(failed(await runTask("fail-with", { code: "Nope" })).retryable).toBe(false);
  });

  it("reports anything else thrown as a retryable FunctionError, without a stack", async () => {
    const error = failed(await runTask("throw-plain", null));
    expect(error).toEqual({
      code: "FunctionError",
      message: "TypeError: cannot read the thing",
      retryable: true,
    });
  });

  it("answers InputInvalid without running the handler, and applies schema defaults", async () => {
    const { envelope } = await engine.publishTask({ function: "guarded", input: { nam: "typo" } });
    const error = failed(await engine.waitForOutcome(envelope.execution));
    expect(error.code).toBe("InputInvalid");
    expect(error.retryable).toBe(false);
    expect(error.message).toMatch(/\/name must have required property 'name'/);
    expect(error.details).toEqual({
      problems: [{ path: "/name", message: "must have required property 'name'" }],
    });
    expect(existsSync(join(markerDir, envelope.execution)), "the handler did not run").toBe(false);

    const good = await engine.publishTask({ function: "guarded", input: { name: "sam" } });
    expect(succeeded(await engine.waitForOutcome(good.envelope.execution))).toBe("hello sam");
    expect(existsSync(join(markerDir, good.envelope.execution))).toBe(true);
  });

  it("refuses output that is not JSON or too large for a message, with OutputInvalid", async () => {
    expect(failed(await runTask("non-json", null))).toMatchObject({
      code: "OutputInvalid",
      retryable: false,
    });
    const error = failed(await runTask("big-output", { bytes: 2 * 1024 * 1024 }));
    expect(error).toMatchObject({ code: "OutputInvalid", retryable: false });
    expect(error.message).toMatch(/more than the \d+ a NATS message can carry/);
  });
});

describe("isolation", () => {
  it("process.exit in a function fails the attempt with WorkerCrashed, and the worker serves on", async () => {
    const error = failed(await runTask("crash", null));
    expect(error).toMatchObject({ code: "WorkerCrashed", retryable: true });
    expect(error.message).toMatch(/exit code 1/);
    await expectStillServing();
  });

  it("an error thrown outside the handler's promise crashes only the isolate", async () => {
    const error = failed(await runTask("stray-throw", null));
    expect(error).toMatchObject({ code: "WorkerCrashed", retryable: true });
    expect(error.message).toMatch(/uncaught RangeError: thrown from a timer/);
    await expectStillServing();
  });

  it("an endless loop fails with Timeout at the deadline, and the worker serves on", async () => {
    const startedAt = Date.now();
    const error = failed(await runTask("spin", null, { deadline: Date.now() + 400 }));
    expect(error).toMatchObject({ code: "Timeout", retryable: true });
    expect(error.message).toMatch(/ran past the attempt's deadline/);
    expect(Date.now() - startedAt).toBeLessThan(5_000);
    await expectStillServing();
  });

  it("running out of heap fails with WorkerCrashed (out of memory), and the worker serves on", async () => {
    const error = failed(await runTask("hog", null));
    expect(error).toMatchObject({ code: "WorkerCrashed", retryable: true });
    expect(error.message).toMatch(/ran out of memory \(the isolate's heap limit is 64 MB\)/);
    await expectStillServing();
  });

  it("a task whose deadline passed before it started fails with Timeout without running", async () => {
    const error = failed(await runTask("guarded", { name: "late" }, { deadline: Date.now() - 1 }));
    expect(error).toMatchObject({ code: "Timeout", retryable: true });
    expect(error.message).toMatch(/deadline had passed before/);
  });
});

describe("cancellation", () => {
  it("aborts the handler's signal on a cancel for its execution: Cancelled, not retryable", async () => {
    const { envelope } = await engine.publishTask({ function: "sleep", input: { ms: 60_000 } });
    await engine.waitForEvent(
      (e) => e.envelope.execution === envelope.execution && e.envelope.type === "task.started",
      15_000,
      "task.started",
    );
    const cancelledAt = Date.now();
    await engine.cancel({ execution: envelope.execution, reason: "stopped by the test" });
    const error = failed(await engine.waitForOutcome(envelope.execution));
    expect(error).toEqual({
      code: "Cancelled",
      message: "the execution was cancelled: stopped by the test",
      retryable: false,
    });
    expect(Date.now() - cancelledAt).toBeLessThan(3_000);
  });

  it("terminates a handler that ignores the signal after the grace period", async () => {
    const { envelope } = await engine.publishTask({
      function: "spin",
      input: null,
      step: "spinning",
      run: 7,
    });
    await engine.waitForEvent(
      (e) => e.envelope.execution === envelope.execution && e.envelope.type === "task.started",
      15_000,
      "task.started",
    );
    // A cancel for another step run of the execution leaves this attempt alone.
    await engine.cancel({ execution: envelope.execution, step: "spinning", run: 6, reason: "other run" });
    await engine.cancel({ execution: envelope.execution, step: "spinning", run: 7, reason: "this run" });
    const error = failed(await engine.waitForOutcome(envelope.execution));
    expect(error).toMatchObject({ code: "Cancelled", retryable: false });
    expect(error.message).toMatch(/this run/);
    await expectStillServing();
  });

  it("reports success when the handler finishes within the grace after a cancel", async () => {
    const { envelope } = await engine.publishTask({ function: "stubborn", input: { ms: 150 } });
    await engine.waitForEvent(
      (e) => e.envelope.execution === envelope.execution && e.envelope.type === "task.started",
      15_000,
      "task.started",
    );
    await engine.cancel({ execution: envelope.execution, reason: "too late" });
    expect(succeeded(await engine.waitForOutcome(envelope.execution))).toBe("finished anyway");
  });

  it("a cancel that names an attempt leaves the retry of the same step run alone", async () => {
    // The engine cancels a timed-out attempt by number, then dispatches the next one: that one
    // must run, whether it arrives after the cancel or is running when a late cancel comes.
    const first = await engine.publishTask({ function: "sleep", input: { ms: 60_000 }, attempt: 1 });
    const { execution } = first.envelope;
    await engine.waitForEvent(
      (e) => e.envelope.execution === execution && e.envelope.type === "task.started",
      15_000,
      "task.started of attempt 1",
    );
    await engine.cancel({ execution, step: "step-one", run: 1, attempt: 1, reason: "timed out" });
    expect(failed(await engine.waitForOutcome(execution)).code).toBe("Cancelled");
    // Long enough that the late cancel below comes while it runs.
    await engine.publishTask({ function: "sleep", input: { ms: 3_000 }, execution, attempt: 2 });
    await engine.waitForEvent(
      (e) =>
        e.envelope.execution === execution && e.envelope.type === "task.started" && e.envelope.attempt === 2,
      15_000,
      "task.started of attempt 2",
    );
    await engine.cancel({ execution, step: "step-one", run: 1, attempt: 1, reason: "timed out, said again" });
    const second = await engine.waitForEvent(
      (e) =>
        e.envelope.execution === execution &&
        e.envelope.attempt === 2 &&
        (e.envelope.type === "task.succeeded" || e.envelope.type === "task.failed"),
      15_000,
      "the outcome of attempt 2",
    );
    expect(second.envelope.type, JSON.stringify(second.envelope)).toBe("task.succeeded");
  });

  it("fails a task that arrives after its execution was cancelled, without running it", async () => {
    const execution = newExecutionId();
    await engine.cancel({ execution, reason: "cancelled early" });
    await engine.nc.flush();
    const { envelope } = await engine.publishTask({ function: "guarded", input: { name: "x" }, execution });
    const error = failed(await engine.waitForOutcome(envelope.execution));
    expect(error.code).toBe("Cancelled");
    expect(existsSync(join(markerDir, execution))).toBe(false);
  });
});

describe("malformed tasks", () => {
  it("terminates a message that is not JSON, and keeps serving", async () => {
    const seq = await engine.publishRaw("pure", "echo", "{ not json");
    await waitUntil("the malformed task to leave the stream", async () => {
      const info = await engine.jsm.consumers.info(streams.tasks, taskConsumer("pure", "echo"));
      const stillThere = await engine.jsm.streams.getMessage(streams.tasks, { seq }).then(
        () => true,
        () => false,
      );
      return info.num_ack_pending === 0 && info.num_pending === 0 && !stillThere ? true : undefined;
    });
    expect(logLines.some((l) => l.message.startsWith("refusing a task") && l.fields?.sequence === seq)).toBe(
      true,
    );
    await expectStillServing();
  });

  it("answers TaskInvalid when the body names its attempt but breaks the protocol", async () => {
    const execution = newExecutionId();
    const body = {
      v: 2,
      execution,
      workflow: "w",
      step: "s",
      run: 1,
      attempt: 1,
      function: "echo",
      effect: false,
      reply: subjects.result(execution, defaultPartitions),
    };
    await engine.publishRaw("pure", "echo", JSON.stringify(body)); // no input, no deadline
    const error = failed(await engine.waitForOutcome(execution));
    expect(error.code).toBe("TaskInvalid");
    expect(error.retryable).toBe(false);
    expect(error.message).toMatch(/input is missing/);
    expect(error.message).toMatch(/deadline must be a number/);
  });

  it("answers TaskInvalid from the headers when the body is unreadable, e.g. a future protocol version", async () => {
    const execution = newExecutionId();
    await engine.publishRaw("pure", "echo", "\u0000binary", {
      [headers.execution]: execution,
      [headers.step]: "s",
      [headers.run]: "2",
      [headers.attempt]: "1",
      [headers.reply]: subjects.result(execution, defaultPartitions),
    });
    expect(failed(await engine.waitForOutcome(execution)).code).toBe("TaskInvalid");

    const future = newExecutionId();
    await engine.publishRaw(
      "pure",
      "echo",
      JSON.stringify({
        v: 3,
        execution: future,
        workflow: "w",
        step: "s",
        run: 1,
        attempt: 1,
        function: "echo",
        reply: subjects.result(future, defaultPartitions),
      }),
    );
    expect(failed(await engine.waitForOutcome(future)).message).toMatch(
      /protocol version 3 is not one this worker speaks/,
    );
    await expectStillServing();
  });
});

describe("concurrency and ordering", () => {
  it("never runs more attempts than each lane's slots, and never holds more tasks than that", async () => {
    const ms = 300;
    // Warm up an isolate per slot first, so that starting isolates does not spread the attempts out.
    const warmUp = await Promise.all([
      ...Array.from({ length: PURE_SLOTS }, () =>
        engine.publishTask({ function: "interval", input: { ms } }),
      ),
      ...Array.from({ length: EFFECT_SLOTS }, () =>
        engine.publishTask({
          function: "interval",
          input: { ms },
          effect: true,
          idempotencyKey: newExecutionId("k"),
        }),
      ),
    ]);
    await Promise.all(warmUp.map(({ envelope }) => engine.waitForOutcome(envelope.execution)));

    const pure = await Promise.all(
      Array.from({ length: PURE_SLOTS * 3 }, () =>
        engine.publishTask({ function: "interval", input: { ms } }),
      ),
    );
    const effect = await Promise.all(
      Array.from({ length: EFFECT_SLOTS * 3 }, () =>
        engine.publishTask({
          function: "interval",
          input: { ms },
          effect: true,
          idempotencyKey: newExecutionId("k"),
        }),
      ),
    );
    // While they run, sample how many tasks of each consumer the worker holds unacked.
    const held = { pure: 0, effect: 0 };
    let isSampling = true;
    const sampling = (async () => {
      while (isSampling) {
        for (const lane of ["pure", "effect"] as const) {
          const info = await engine.jsm.consumers.info(streams.tasks, taskConsumer(lane, "interval"));
          held[lane] = Math.max(held[lane], info.num_ack_pending);
        }
      }
    })();
    let outcomes: Awaited<ReturnType<EngineDouble["waitForOutcome"]>>[];
    try {
      outcomes = await Promise.all(
        [...pure, ...effect].map(({ envelope }) => engine.waitForOutcome(envelope.execution, 30_000)),
      );
    } finally {
      isSampling = false;
      await sampling;
    }

    const intervals = outcomes.map((o) => succeeded(o) as { start: number; end: number; effect: boolean });
    const maxOverlap = (list: typeof intervals): number =>
      Math.max(...list.map((a) => list.filter((b) => b.start <= a.start && a.start < b.end).length));
    expect(maxOverlap(intervals.filter((i) => !i.effect))).toBe(PURE_SLOTS);
    expect(maxOverlap(intervals.filter((i) => i.effect))).toBe(EFFECT_SLOTS);
    expect(held.pure).toBeLessThanOrEqual(PURE_SLOTS);
    expect(held.effect).toBeLessThanOrEqual(EFFECT_SLOTS);
  });

  it("hands back a task of another function that arrives while the lane is full, and runs it once a slot frees", async () => {
    const busy = await Promise.all(
      Array.from({ length: PURE_SLOTS }, () =>
        engine.publishTask({ function: "interval", input: { ms: 700 } }),
      ),
    );
    const isBusy = (e: { envelope: { execution: string } }) =>
      busy.some((b) => b.envelope.execution === e.envelope.execution);
    await waitUntil("every slot to be taken", () =>
      engine.events.filter((e) => isBusy(e) && e.envelope.type === "task.started").length === PURE_SLOTS
        ? true
        : undefined,
    );
    const echo = await engine.publishTask({ function: "echo", input: "waits its turn" });
    // The worker does not sit on it: another worker of "echo" (here, the test) can take it while
    // the lane is full. The test hands it back in turn.
    const otherWorker = await engine.js.consumers.get(streams.tasks, taskConsumer("pure", "echo"));
    let taken: string | undefined;
    for await (const msg of await otherWorker.fetch({ max_messages: 1, expires: 5_000 })) {
      taken = msg.json<TaskEnvelope>().execution;
      msg.nak();
    }
    expect(taken).toBe(echo.envelope.execution);
    expect(engine.events.some((e) => isBusy(e) && e.envelope.type === "task.succeeded")).toBe(false);
    const outcome = await engine.waitForOutcome(echo.envelope.execution);
    expect(succeeded(outcome)).toBe("waits its turn");
    const firstFreed = engine.events.find((e) => isBusy(e) && e.envelope.type === "task.succeeded");
    expect(outcome.seq).toBeGreaterThan(firstFreed!.seq);
  });

  it("publishes the result (and has it stored) before it acks the task", async () => {
    const order: string[] = [];
    const record = (kind: string) => (_error: unknown, msg: Msg) => {
      if (kind === "ack" && new TextDecoder().decode(msg.data) !== "+ACK") return; // progress, not an ack
      order.push(`${kind} ${msg.subject}`);
    };
    const acks = engine.nc.subscribe(`$JS.ACK.${streams.tasks}.>`, { callback: record("ack") });
    const results = engine.nc.subscribe(subjects.allEvents, { callback: record("event") });
    await engine.nc.flush();
    const { envelope, seq } = await engine.publishTask({ function: "echo", input: 1 });
    await engine.waitForOutcome(envelope.execution);
    const isAckOfTask = (line: string) => line.startsWith("ack ") && line.split(".")[5] === String(seq);
    await waitUntil("the task's ack", () => (order.some(isAckOfTask) ? true : undefined));
    acks.unsubscribe();
    results.unsubscribe();
    const resultAt = order.indexOf(`event ${subjects.result(envelope.execution, defaultPartitions)}`);
    const ackAt = order.findIndex(isAckOfTask);
    expect(resultAt).toBeGreaterThanOrEqual(0);
    expect(ackAt).toBeGreaterThan(resultAt);
  });
});

describe("heartbeats", () => {
  it("announces the worker on its subject and in the workers bucket", async () => {
    const beat = await new Promise<HeartbeatEnvelope>((resolve) => {
      const sub = engine.nc.subscribe(subjects.heartbeat(worker.id), {
        callback: (_error, msg) => {
          sub.unsubscribe();
          resolve(msg.json<HeartbeatEnvelope>());
        },
      });
    });
    expect(beat).toMatchObject({
      v: 2,
      worker: worker.id,
      concurrency: PURE_SLOTS,
      effectConcurrency: EFFECT_SLOTS,
    });
    expect(beat.functions).toContainEqual({ name: "echo", lane: "pure" });
    expect(beat.functions).toContainEqual({ name: "echo", lane: "effect" });
    expect(beat.functions).toContainEqual({ name: "effect-counter", lane: "effect" });
    expect(beat.functions).not.toContainEqual({ name: "effect-counter", lane: "pure" });
    const kv = await engine.js.views.kv("baton_workers");
    const entry = await kv.get(worker.id);
    expect(entry?.json<HeartbeatEnvelope>().worker).toBe(worker.id);
  });
});

describe("its consumer deleted under it", () => {
  it("creates the function's consumer again and serves on", async () => {
    // An operator (or a cleanup script) deletes the shared consumer of `noop` while the worker
    // pulls from it: the pull fails, and the worker makes sure of the consumer again.
    const before = logLines.length;
    expect(await engine.jsm.consumers.delete(streams.tasks, taskConsumer("pure", "noop"))).toBe(true);
    const outcome = await runTask("noop", { after: "delete" });
    expect(succeeded(outcome)).toEqual({ after: "delete" });
    const retried = logLines
      .slice(before)
      .filter(
        (line) => line.message === "pulling tasks failed; trying again" && line.fields?.function === "noop",
      );
    expect(retried.length).toBeGreaterThan(0);
  });
});
