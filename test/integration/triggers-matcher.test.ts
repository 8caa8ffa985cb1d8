/**
 * The matcher against a real nats-server and engine: trigger events published on BATON_TRIGGERS
 * (as every trigger source publishes them) start the workflows whose triggers accept them, once
 * per delivery, with `$event` and `$trigger`; deliveries are recorded; refused inputs are recorded
 * (and queue messages dead-lettered), never retried forever; triggers follow workflow updates and
 * deletes.
 */
import { connect, type NatsConnection, type Subscription } from "nats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadEngineConfig } from "../../engine/config.ts";
import { Executions } from "../../engine/orchestrator/executions.ts";
import { Orchestrator } from "../../engine/orchestrator/orchestrator.ts";
import { deadLetterSubject, matchTriggerEvent, TriggerMatcher } from "../../engine/triggers/matcher.ts";
import { publishTriggerEvent, triggerMessageId } from "../../engine/triggers/publish-trigger.ts";
import {
  triggerAttributes,
  triggeredExecutionId,
  type DeliveryRecord,
  type TriggerEvent,
} from "../../engine/triggers/trigger-event.ts";
import { useNatsServer } from "../helpers/nats-server.ts";
import { testLogger } from "../helpers/test-logger.ts";
import { waitUntil } from "../helpers/processes.ts";

const server = useNatsServer();

let nc: NatsConnection;
let engine: Orchestrator;
let executions: Executions;
let matcher: TriggerMatcher;

const echoSteps = `
steps:
  - name: describe
    return:
      input: \${ $input }
      event: \${ $event }
      trigger: \${ $trigger }
`;

const workflows = {
  "on-node": `baton: v1
name: on-node
triggers:
  - infra:
      events: [node.joined]
      input:
        node: \${ $event.node }
${echoSteps}`,
  "on-upload": `baton: v1
name: on-upload
input:
  type: object
  required: [image]
  properties: { image: { type: string } }
triggers:
  - queue:
      subject: images.*.uploaded
      when: \${ $not($event.kind = "ignored") }
      input:
        image: \${ $event.image }
${echoSteps}`,
  "on-tick": `baton: v1
name: on-tick
triggers:
  - schedule:
      cron: "0 0 1 1 *"
${echoSteps}`,
  "also-on-node": `baton: v1
name: also-on-node
triggers:
  - infra:
      events: [node.joined, node.left]
${echoSteps}`,
};

let sequence = 0;
const eventOf = (event: Omit<TriggerEvent, "id" | "time"> & { id?: string }): TriggerEvent => ({
  id: `event-${++sequence}-${Date.now()}`,
  time: new Date().toISOString(),
  ...event,
});

async function delivered(event: TriggerEvent, check: (record: DeliveryRecord) => boolean = () => true) {
  return waitUntil(`delivery ${event.source}:${event.id}`, async () => {
    const record = await matcher.plane.delivery(event.source, event.id);
    return record && check(record) ? record : undefined;
  });
}

beforeAll(async () => {
  nc = await connect({ servers: server().url });
  engine = await Orchestrator.create(
    nc,
    { ...loadEngineConfig({ NATS_URL: server().url }), retentionMs: 60_000 },
    testLogger,
  );
  await engine.start();
  executions = await Executions.connect(nc);
  for (const yaml of Object.values(workflows)) await executions.apply(yaml);
  matcher = await TriggerMatcher.start(executions, testLogger);
});

afterAll(async () => {
  await matcher?.stop();
  await engine?.stop();
  await nc?.drain();
});

describe("matching", () => {
  it("matches by source, type, subject, repository and when", () => {
    const armed = [
      { workflow: "gh", revision: 1, triggers: [{ github: { events: ["push"], repository: "acme/site" } }] },
      {
        workflow: "gh-closed",
        revision: 1,
        triggers: [{ github: { events: ["pull_request"], when: '${ $event.action = "closed" }' } }],
      },
      { workflow: "q", revision: 1, triggers: [{ queue: { subject: "orders.>" } }] },
      { workflow: "sched", revision: 1, triggers: [{ schedule: { cron: "* * * * *" } }] },
    ];
    const names = (event: Omit<TriggerEvent, "id" | "time">) =>
      matchTriggerEvent(armed, eventOf(event)).map((match) => match.workflow);
    expect(
      names({ source: "github", type: "push", data: { repository: { full_name: "acme/site" } } }),
    ).toEqual(["gh"]);
    expect(
      names({ source: "github", type: "push", data: { repository: { full_name: "acme/other" } } }),
    ).toEqual([]);
    expect(names({ source: "github", type: "pull_request", data: { action: "closed" } })).toEqual([
      "gh-closed",
    ]);
    expect(names({ source: "github", type: "pull_request", data: { action: "opened" } })).toEqual([]);
    expect(names({ source: "github", type: "issues", data: { action: "opened" } })).toEqual([]);
    expect(names({ source: "queue", type: "message", subject: "orders.7.paid", data: {} })).toEqual(["q"]);
    expect(names({ source: "queue", type: "message", subject: "order.7", data: {} })).toEqual([]);
    expect(names({ source: "schedule", type: "tick", subject: "sched", data: {} })).toEqual(["sched"]);
    expect(names({ source: "schedule", type: "tick", subject: "other", data: {} })).toEqual([]);
    expect(names({ source: "infra", type: "push", data: {} })).toEqual([]);
  });

  it("rejects, rather than fails on, a trigger expression that cannot be evaluated", () => {
    const armed = [
      { workflow: "w", revision: 1, triggers: [{ infra: { events: ["x"], when: "${ $undefinedFn() }" } }] },
    ];
    expect(matchTriggerEvent(armed, eventOf({ source: "infra", type: "x", data: {} }))).toEqual([
      { workflow: "w", rejected: expect.stringMatching(/trigger expression failed/) as string },
    ]);
  });
});

describe("the matcher", () => {
  it("starts every workflow whose trigger accepts an event, with the derived id, $event and $trigger", async () => {
    const event = eventOf({
      source: "infra",
      type: "node.joined",
      subject: "node-a",
      data: { node: "node-a" },
    });
    await publishTriggerEvent(nc.jetstream(), event);
    const record = await delivered(event);
    const expected = ["also-on-node", "on-node"].map((workflow) => ({
      workflow,
      execution: triggeredExecutionId(event, workflow),
    }));
    expect(record).toMatchObject({
      source: "infra",
      id: event.id,
      type: "node.joined",
      executions: expected,
    });
    const ended = await executions.waitForEnd(triggeredExecutionId(event, "on-node"), 10_000);
    expect(ended).toMatchObject({
      status: "succeeded",
      output: { input: { node: "node-a" }, event: { node: "node-a" }, trigger: triggerAttributes(event) },
    });
    // No input template: the event's data is the input.
    const other = await executions.waitForEnd(triggeredExecutionId(event, "also-on-node"), 10_000);
    expect(other?.output).toMatchObject({ input: { node: "node-a" } });
  });

  it("records a delivery that matches nothing, with no executions", async () => {
    const event = eventOf({ source: "infra", type: "function.available", data: {} });
    await publishTriggerEvent(nc.jetstream(), event);
    expect((await delivered(event)).executions).toEqual([]);
  });

  it("matches queue subjects and `when`, and starts schedules by workflow name", async () => {
    const upload = eventOf({
      source: "queue",
      type: "message",
      subject: "images.42.uploaded",
      data: { image: "a.png" },
    });
    const ignored = eventOf({
      source: "queue",
      type: "message",
      subject: "images.42.uploaded",
      data: { image: "b.png", kind: "ignored" },
    });
    const tick = eventOf({
      source: "schedule",
      type: "tick",
      subject: "on-tick",
      data: { scheduledAt: "2026-01-01T00:00:00Z" },
    });
    for (const event of [upload, ignored, tick]) await publishTriggerEvent(nc.jetstream(), event);
    expect((await delivered(upload)).executions).toEqual([
      { workflow: "on-upload", execution: triggeredExecutionId(upload, "on-upload") },
    ]);
    expect((await delivered(ignored)).executions).toEqual([]);
    expect((await delivered(tick)).executions).toEqual([
      { workflow: "on-tick", execution: triggeredExecutionId(tick, "on-tick") },
    ]);
    const ended = await executions.waitForEnd(triggeredExecutionId(upload, "on-upload"), 10_000);
    expect(ended?.output).toMatchObject({
      input: { image: "a.png" },
      trigger: { source: "queue", subject: "images.42.uploaded" },
    });
  });

  it("records an input the workflow refuses, dead-letters the queue message, and does not retry it", async () => {
    const deadLetters: unknown[] = [];
    const subscription: Subscription = nc.subscribe(deadLetterSubject("images.9.uploaded"), {
      callback: (_error, message) => deadLetters.push(message.json()),
    });
    const event = eventOf({
      source: "queue",
      type: "message",
      subject: "images.9.uploaded",
      data: { image: 42 },
    });
    await publishTriggerEvent(nc.jetstream(), event);
    const record = await delivered(event);
    expect(record.executions).toEqual([]);
    expect(record.rejected).toEqual([
      { workflow: "on-upload", reason: expect.stringMatching(/input rejected/) as string },
    ]);
    await waitUntil("the dead letter", () => (deadLetters.length > 0 ? deadLetters : undefined));
    expect(deadLetters[0]).toMatchObject({ event: { id: event.id }, rejected: [{ workflow: "on-upload" }] });
    subscription.unsubscribe();
    // Acknowledged: nothing left pending on the matcher's consumer.
    const jsm = await nc.jetstreamManager();
    await waitUntil("the matcher to acknowledge everything", async () => {
      const info = await jsm.consumers.info("BATON_TRIGGERS", "engine_triggers");
      return info.num_ack_pending === 0 && info.num_pending === 0 ? true : undefined;
    });
  });

  it("never starts a second execution for a delivery, even replayed after the duplicate window", async () => {
    const event = eventOf({ source: "infra", type: "node.left", data: { node: "node-b" } });
    const js = nc.jetstream();
    expect((await publishTriggerEvent(js, event)).duplicate).toBe(false);
    // A redelivery within the window is dropped at the door.
    expect((await publishTriggerEvent(js, event)).duplicate).toBe(true);
    const first = await delivered(event);
    expect(first.executions).toEqual([
      { workflow: "also-on-node", execution: triggeredExecutionId(event, "also-on-node") },
    ]);
    await executions.waitForEnd(first.executions[0]!.execution, 10_000);
    // After the window JetStream no longer knows the message id: as if, publish it under another.
    const replay = { ...event, time: new Date(Date.now() + 60_000).toISOString() };
    const ack = await publishTriggerEvent(js, replay, { msgID: `${triggerMessageId(event)}:replayed` });
    expect(ack.duplicate).toBe(false);
    const jsm = await nc.jetstreamManager();
    await waitUntil("the matcher to take the replay", async () => {
      const info = await jsm.consumers.info("BATON_TRIGGERS", "engine_triggers");
      return info.delivered.stream_seq >= ack.seq && info.num_ack_pending === 0 ? true : undefined;
    });
    expect(await matcher.plane.delivery("infra", event.id)).toEqual(first);
    const listed = await executions.list({ workflow: "also-on-node", limit: 100 });
    expect(
      listed.items.filter(
        (item) => (item.output as { trigger?: { id?: string } } | undefined)?.trigger?.id === event.id,
      ),
    ).toHaveLength(1);
  });

  it("arms triggers of new workflows, re-arms updated ones, and disarms deleted ones", async () => {
    await executions.apply(`baton: v1
name: late
triggers:
  - queue:
      subject: custom.first
steps:
  - name: done
    return: 1
`);
    const first = eventOf({ source: "queue", type: "message", subject: "custom.first", data: {} });
    await publishTriggerEvent(nc.jetstream(), first);
    expect((await delivered(first)).executions.map((started) => started.workflow)).toEqual(["late"]);

    await executions.apply(`baton: v1
name: late
triggers:
  - queue:
      subject: custom.second
steps:
  - name: done
    return: 2
`);
    const stale = eventOf({ source: "queue", type: "message", subject: "custom.first", data: {} });
    const second = eventOf({ source: "queue", type: "message", subject: "custom.second", data: {} });
    await publishTriggerEvent(nc.jetstream(), stale);
    await publishTriggerEvent(nc.jetstream(), second);
    expect((await delivered(stale)).executions).toEqual([]);
    expect((await delivered(second)).executions.map((started) => started.workflow)).toEqual(["late"]);

    await executions.removeWorkflow("late");
    const gone = eventOf({ source: "queue", type: "message", subject: "custom.second", data: {} });
    await publishTriggerEvent(nc.jetstream(), gone);
    expect((await delivered(gone)).executions).toEqual([]);
  });
});
