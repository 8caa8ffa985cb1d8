/**
 * The orchestrator against a real nats-server: executions run durably through JetStream, with a
 * protocol-level worker (test/helpers/scripted-worker.ts) serving the functions.
 */
import { eventsHeld } from "../helpers/event-consumers.ts";
import { defaultPartitions } from "../../engine/nats/partitions.ts";
import { connect, type NatsConnection } from "nats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadEngineConfig } from "../../engine/config.ts";
import { Executions, InputInvalidError } from "../../engine/orchestrator/executions.ts";
import { Orchestrator } from "../../engine/orchestrator/orchestrator.ts";
import { childExecutionId } from "../../engine/orchestrator/ids.ts";
import { emittedStream } from "../../engine/nats/emit-stream.ts";
import { subjects } from "../../sdk/protocol.ts";
import { useNatsServer } from "../helpers/nats-server.ts";
import { testLogger } from "../helpers/test-logger.ts";
import { waitUntil } from "../helpers/processes.ts";
import { ScriptedFailure, serveScripted, type ScriptedWorker } from "../helpers/scripted-worker.ts";

const server = useNatsServer();
let nc: NatsConnection;
let engines: Orchestrator[] = [];
let executions: Executions;
let worker: ScriptedWorker;
let effectWorker: ScriptedWorker;
/** Runs of the effect function, by idempotency key: the side effect it stands for. */
const effectRuns = new Map<string, number>();
const attemptsSeen = new Map<string, number>();
/** Calls by execution and step. */
const calls = new Map<string, number>();

beforeAll(async () => {
  nc = await connect({ servers: server().url });
  const config = { ...loadEngineConfig({ NATS_URL: server().url }), retentionMs: 60_000 };
  // Two replicas share the work from the start.
  engines = [
    await Orchestrator.create(nc, config, testLogger),
    await Orchestrator.create(nc, config, testLogger),
  ];
  for (const engine of engines) await engine.start();
  executions = await Executions.connect(nc);
  worker = await serveScripted(nc, {
    double: (input) => ({ n: (input as { n: number }).n * 2 }),
    inc: (input) => ({ n: (input as { n: number }).n + 1 }),
    flaky: (_input, task) => {
      const key = `${task.execution}:${task.step}`;
      attemptsSeen.set(key, (attemptsSeen.get(key) ?? 0) + 1);
      if (task.attempt < 3)
        throw new ScriptedFailure({ code: "Unavailable", message: "try again", retryable: true });
      return { ok: task.attempt };
    },
    square: (input) => (input as number) ** 2,
    "counted-inc": (input, task) => {
      calls.set(`${task.execution}:${task.step}`, (calls.get(`${task.execution}:${task.step}`) ?? 0) + 1);
      return { n: (input as { n: number }).n + 1 };
    },
    "fail-first": (input, task) => {
      const key = `${task.execution}:${task.step}`;
      calls.set(key, (calls.get(key) ?? 0) + 1);
      if (calls.get(key) === 1)
        throw new ScriptedFailure({ code: "Broken", message: "not yet", retryable: false });
      return input;
    },
  });
  effectWorker = await serveScripted(
    nc,
    {
      "slow-charge": async (_input, task) => {
        const key = task.idempotencyKey!;
        effectRuns.set(key, (effectRuns.get(key) ?? 0) + 1);
        await new Promise((resolve) => setTimeout(resolve, 300));
        return { charged: key };
      },
    },
    { lane: "effect" },
  );
});

afterAll(async () => {
  worker?.stop();
  effectWorker?.stop();
  for (const engine of engines) await engine.stop();
  await nc?.close();
});

async function run(yaml: string, workflow: string, input: unknown, timeoutMs = 20_000) {
  await executions.apply(yaml);
  const { id } = await executions.start(workflow, input as never);
  const record = await executions.waitForEnd(id, timeoutMs);
  expect(record, `execution ${id} did not end`).toBeDefined();
  return record!;
}

describe("orchestrator", () => {
  it("runs a chain of calls to the end", async () => {
    const record = await run(
      `baton: v1
name: chain
steps:
  - { name: a, call: double }
  - { name: b, call: inc }
  - { name: c, call: double }
`,
      "chain",
      { n: 5 },
    );
    expect(record.status).toBe("succeeded");
    expect(record.output).toEqual({ n: 22 });
    const history = await executions.history(record.id);
    const types = history.map((entry) => entry.type);
    expect(types[0]).toBe("ExecutionStarted");
    expect(types.at(-1)).toBe("ExecutionSucceeded");
    expect(types.filter((type) => type === "StepSucceeded")).toHaveLength(3);
    expect(history.map((entry) => entry.seq)).toEqual(history.map((_, index) => index + 1));
  });

  it("retries through durable timers until the third attempt", async () => {
    const record = await run(
      `baton: v1
name: retrying
steps:
  - name: try
    call: flaky
    retry: { attempts: 5, delay: 50ms, backoff: exponential }
`,
      "retrying",
      {},
    );
    expect(record.status).toBe("succeeded");
    expect(record.output).toEqual({ ok: 3 });
    expect(attemptsSeen.get(`${record.id}:try`)).toBe(3);
    const types = (await executions.history(record.id)).map((entry) => entry.type);
    expect(types.filter((type) => type === "RetryScheduled")).toHaveLength(2);
    expect(types.filter((type) => type === "TimerFired")).toHaveLength(2);
  });

  it("waits on a durable timer", async () => {
    const started = Date.now();
    const record = await run(
      `baton: v1
name: sleepy
steps:
  - { name: nap, wait: 300ms }
  - { name: after, return: done }
`,
      "sleepy",
      {},
    );
    expect(record.status).toBe("succeeded");
    expect(record.output).toBe("done");
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
  });

  it("fans out over a map with a join, each item an execution of its own", async () => {
    const record = await run(
      `baton: v1
name: fan
steps:
  - name: squares
    map:
      items: \${ $input.numbers }
      concurrency: 7
      steps:
        - { name: sq, call: square }
`,
      "fan",
      { numbers: Array.from({ length: 60 }, (_, index) => index) },
    );
    expect(record.status).toBe("succeeded");
    expect(record.output).toEqual(Array.from({ length: 60 }, (_, index) => index ** 2));
  });

  it("runs a child workflow and takes its output", async () => {
    await executions.apply(`baton: v1
name: child-double
steps:
  - { name: d, call: double }
`);
    const record = await run(
      `baton: v1
name: parent
steps:
  - { name: kid, workflow: child-double, with: { n: 21 } }
`,
      "parent",
      {},
    );
    expect(record.status).toBe("succeeded");
    expect(record.output).toEqual({ n: 42 });
  });

  it("checks a child's input against its schema: defaults filled in, a bad one refused", async () => {
    await executions.apply(`baton: v1
name: child-checked
input:
  type: object
  properties:
    n: { type: integer, default: 4 }
steps:
  - { name: d, call: double }
`);
    const yaml = `baton: v1
name: parent-checked
steps:
  - name: kid
    workflow: child-checked
    with: \${ $input }
`;
    const defaulted = await run(yaml, "parent-checked", {});
    expect(defaulted.status).toBe("succeeded");
    expect(defaulted.output).toEqual({ n: 8 });

    const refused = await run(yaml, "parent-checked", { n: "seven" });
    expect(refused.status).toBe("failed");
    expect(refused.error).toMatchObject({ code: "InputInvalid" });
    expect(await executions.find(childExecutionId(refused.id, "kid", 1))).toBeUndefined();
  });

  it("keeps a signal sent before the receive is reached", async () => {
    await executions.apply(`baton: v1
name: approval
steps:
  - { name: pause, wait: 200ms }
  - name: approved
    receive: { signal: approve, timeout: 10s }
`);
    const { id } = await executions.start("approval", {});
    await executions.signal(id, "approve", { by: "sam" });
    const record = await executions.waitForEnd(id, 10_000);
    expect(record?.status).toBe("succeeded");
    expect(record?.output).toEqual({ by: "sam" });
  });

  it("receives a message on a NATS subject", async () => {
    await executions.apply(`baton: v1
name: paid
steps:
  - name: payment
    receive: { subject: "orders.\${ $input.order }.paid", timeout: 10s }
`);
    const { id } = await executions.start("paid", { order: 7 });
    // The subscription exists once the execution is waiting; publish until it is taken.
    const ended = executions.waitForEnd(id, 10_000);
    const publisher = setInterval(() => nc.publish("orders.7.paid", JSON.stringify({ amount: 3 })), 50);
    const record = await ended;
    clearInterval(publisher);
    expect(record?.status).toBe("succeeded");
    expect(record?.output).toEqual({ amount: 3 });
  });

  it("cancels a waiting execution", async () => {
    await executions.apply(`baton: v1
name: long-wait
steps:
  - { name: nap, wait: 1h }
`);
    const { id } = await executions.start("long-wait", {});
    await executions.cancel(id);
    const record = await executions.waitForEnd(id, 10_000);
    expect(record?.status).toBe("cancelled");
    expect(record?.error?.code).toBe("Cancelled");
  });

  it("refuses a bad input and creates nothing", async () => {
    await executions.apply(`baton: v1
name: typed
input: { type: object, required: [n], properties: { n: { type: number } } }
steps:
  - { name: a, call: double }
`);
    await expect(executions.start("typed", { n: "five" }, { id: "typed-bad" })).rejects.toBeInstanceOf(
      InputInvalidError,
    );
    expect(await executions.get("typed-bad")).toBeUndefined();
  });

  it("drops a malformed event and goes on working", async () => {
    await nc.jetstream().publish(subjects.events("garbage-1", defaultPartitions), "{ not json");
    await nc
      .jetstream()
      .publish(subjects.events("garbage-2", defaultPartitions), JSON.stringify({ type: "no.such.event" }));
    const record = await run(
      `baton: v1
name: after-garbage
steps:
  - { name: a, call: inc }
`,
      "after-garbage",
      { n: 1 },
    );
    expect(record.output).toEqual({ n: 2 });
    // Dropped for good: neither left in the stream for a redelivery nor held unacknowledged.
    const jsm = await nc.jetstreamManager();
    for (const execution of ["garbage-1", "garbage-2"]) {
      await waitUntil(`the malformed event of ${execution} to leave BATON_EVENTS`, async () =>
        (await jsm.streams
          .getMessage("BATON_EVENTS", { last_by_subj: subjects.events(execution, defaultPartitions) })
          .catch(() => undefined))
          ? undefined
          : true,
      );
    }
    const held = await waitUntil("the events consumers to hold nothing", async () => {
      const state = await eventsHeld(jsm);
      return state.pending === 0 && state.unacknowledged === 0 ? state : undefined;
    });
    expect(held).toEqual({ pending: 0, unacknowledged: 0 });
  });

  it("takes only task reports on a worker's result subject", async () => {
    await executions.apply(`baton: v1
name: forgeable
steps:
  - { name: a, call: inc }
`);
    const start = () =>
      JSON.stringify({
        type: "execution.start",
        workflow: "forgeable",
        revision: 1,
        input: { n: 1 },
        at: Date.now(),
      });
    // A start on the worker's subject (what a worker allowed only `baton.events.p.*.*.result` could
    // send) is dropped; the same start on the events subject is taken, so the test can fail.
    await nc.jetstream().publish(subjects.result("forged-on-result", defaultPartitions), start());
    await nc.jetstream().publish(subjects.events("started-on-events", defaultPartitions), start());
    await waitUntil("the start on the events subject to run", async () => {
      const record = await executions.get("started-on-events");
      return record?.status === "succeeded" ? record : undefined;
    });
    const jsm = await nc.jetstreamManager();
    await waitUntil("the forged start to leave BATON_EVENTS", async () =>
      (await jsm.streams
        .getMessage("BATON_EVENTS", { last_by_subj: subjects.result("forged-on-result", defaultPartitions) })
        .catch(() => undefined))
        ? undefined
        : true,
    );
    expect(await executions.get("forged-on-result")).toBeUndefined();
  });

  it("never lets two replicas advance one execution at once", async () => {
    // Every signal adds its own index to a list through set + switch. A lost update (two
    // replicas writing over each other) would lose an index and the execution would never reach
    // the total; a signal applied twice would show as an index counted twice (and one missing).
    // (`$exists`, not the list's truth: JSONata holds `[0]` false, which dropped index 0 whenever
    // its signal came first, as it always does with one engine holding the execution.)
    const total = 60;
    await executions.apply(`baton: v1
name: counter
steps:
  - name: bumped
    receive: { signal: bump }
  - name: count
    set: { seen: "\${ $append($exists($vars.seen) ? $vars.seen : [], [$steps.bumped.output.index]) }" }
  - name: enough
    switch:
      - when: \${ $count($vars.seen) < ${total} }
        next: bumped
      - default: true
        next: done
  - name: done
    return: \${ $vars.seen }
`);
    const { id } = await executions.start("counter", {});
    await Promise.all(Array.from({ length: total }, (_, index) => executions.signal(id, "bump", { index })));
    const record = await executions.waitForEnd(id, 20_000);
    expect(record?.status).toBe("succeeded");
    const seen = record?.output as number[];
    expect([...seen].sort((a, b) => a - b)).toEqual(Array.from({ length: total }, (_, index) => index));
    const received = (await executions.history(id)).filter((entry) => entry.type === "SignalReceived");
    expect(received).toHaveLength(total);
  });

  it("never runs a completed effect step again, even for a later attempt", async () => {
    // Attempt 1 outlives its timeout but completes during the backoff (3 s, room for a loaded
    // machine to finish a 300 ms handler); attempt 2 is then answered from the effect ledger
    // instead of charging twice.
    const record = await run(
      `baton: v1
name: charge
steps:
  - name: charge
    call: slow-charge
    effect: true
    timeout: 100ms
    retry: { attempts: 3, delay: 3s, backoff: constant }
`,
      "charge",
      {},
    );
    const key = `${record.id}/charge/1`;
    expect(record.status).toBe("succeeded");
    expect(record.output).toEqual({ charged: key });
    expect(effectRuns.get(key)).toBe(1);
    expect(effectWorker.tasks.filter((task) => task.idempotencyKey === key)).toHaveLength(1);
    const history = await executions.history(record.id);
    const succeeded = history.filter((entry) => entry.type === "AttemptSucceeded");
    expect(succeeded.map((entry) => [entry.attempt, entry.worker])).toEqual([
      [1, "scripted"],
      [2, "ledger"],
    ]);
  });

  it("emits once per step run, deduplicated by JetStream", async () => {
    const record = await run(
      `baton: v1
name: announcer
steps:
  - name: announce
    emit:
      subject: "images.\${ $input.kind }.ready"
      data: { n: 1 }
`,
      "announcer",
      { kind: "png" },
    );
    expect(record.status).toBe("succeeded");
    const jsm = await nc.jetstreamManager();
    const stored = await jsm.streams.getMessage(emittedStream, { last_by_subj: "images.png.ready" });
    expect(stored.json()).toEqual({ n: 1 });
    expect(stored.header.get("Nats-Msg-Id")).toBe(`${record.id}/announce/1`);
    // A replay of the same publish (as after a crash) is dropped.
    const replay = await nc
      .jetstream()
      .publish("images.png.ready", JSON.stringify({ n: 1 }), { msgID: `${record.id}/announce/1` });
    expect(replay.duplicate).toBe(true);
  });

  it("refuses at run time an emit or receive subject that an expression made reserved", async () => {
    const jsm = await nc.jetstreamManager();
    await run("baton: v1\nname: some-history\nsteps: [{ name: a, return: 1 }]\n", "some-history", {});
    const before = (await jsm.streams.info("BATON_HISTORY")).state.messages;
    expect(before).toBeGreaterThan(0);
    // The input names a subject of the JetStream API: published, it would purge the history.
    const emitted = await run(
      `baton: v1
name: forger
steps:
  - { name: announce, emit: { subject: "\${ $input.subject }", data: {} } }
`,
      "forger",
      { subject: "$JS.API.STREAM.PURGE.BATON_HISTORY" },
    );
    expect(emitted.status).toBe("failed");
    expect(emitted.error?.code).toBe("SubjectRefused");
    expect(emitted.error?.message).toContain('under "$JS."');
    expect((await jsm.streams.info("BATON_HISTORY")).state.messages).toBeGreaterThan(before);

    const listener = `baton: v1
name: eavesdropper
steps:
  - { name: listen, receive: { subject: "\${ $input.subject }", timeout: 30s } }
`;
    for (const subject of [`baton.events.${"x".repeat(8)}`, "_INBOX.abc", ">", "orders.*"]) {
      const received = await run(listener, "eavesdropper", { subject });
      expect([subject, received.status, received.error?.code]).toEqual([subject, "failed", "SubjectRefused"]);
    }
  });

  it("retries a failed execution from the step that failed, keeping what finished", async () => {
    const failed = await run(
      `baton: v1
name: retry-me
steps:
  - { name: one, call: counted-inc }
  - { name: two, call: fail-first }
  - { name: three, call: counted-inc }
`,
      "retry-me",
      { n: 1 },
    );
    expect(failed.status).toBe("failed");
    expect(failed.error?.code).toBe("Broken");
    await executions.retry(failed.id);
    const retried = await waitUntil("the retried execution to succeed", async () => {
      const record = await executions.get(failed.id);
      return record?.status === "succeeded" ? record : undefined;
    });
    expect(retried?.status).toBe("succeeded");
    expect(retried?.output).toEqual({ n: 3 });
    expect(calls.get(`${failed.id}:one`)).toBe(1);
    expect(calls.get(`${failed.id}:two`)).toBe(2);
    const types = (await executions.history(failed.id)).map((entry) => entry.type);
    expect(types.filter((type) => type === "ExecutionFailed")).toHaveLength(1);
    expect(types).toContain("ExecutionRetried");
    expect(types.at(-1)).toBe("ExecutionSucceeded");
  });
});
