/**
 * Schedule triggers against a real nats-server: two replicas fire each due time once, and after
 * a downtime `catchUp` decides what the missed times do. Publishes are counted on the core
 * subject (a core subscriber sees every publish, even one JetStream would drop as a duplicate).
 */
import fastify from "fastify";
import { connect, type NatsConnection, type Subscription } from "nats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiContext } from "../../engine/api/context.ts";
import { workflowRoutes } from "../../engine/api/routes/workflows.ts";
import { sharedSchemas } from "../../engine/api/schemas.ts";
import { defaultLimits } from "../../engine/api/server.ts";
import { ensureTopology } from "../../engine/nats/topology.ts";
import { WorkflowStore } from "../../engine/nats/workflow-store.ts";
import { ScheduleService } from "../../engine/triggers/schedule-service.ts";
import { nextFireTimes, planDueTimes } from "../../engine/triggers/schedule.ts";
import { triggerSubject, type TriggerEvent } from "../../engine/triggers/trigger-event.ts";
import type { WorkflowDefinition } from "../../engine/workflow/definition.ts";
import { useNatsServer } from "../helpers/nats-server.ts";
import { testLogger } from "../helpers/test-logger.ts";
import { waitUntil } from "../helpers/processes.ts";

const server = useNatsServer();
let nc: NatsConnection;
let store: WorkflowStore;
let ticks: Subscription;
const seen: TriggerEvent[] = [];

beforeAll(async () => {
  nc = await connect({ servers: server().url });
  store = new WorkflowStore((await ensureTopology(nc)).workflows);
  ticks = nc.subscribe(triggerSubject("schedule"), {
    callback: (_error, message) => seen.push(message.json<TriggerEvent>()),
  });
});
afterAll(async () => {
  ticks?.unsubscribe();
  await nc?.close();
});

const everySecond = (name: string, catchUp?: "none" | "latest" | "all"): WorkflowDefinition => ({
  baton: "v1",
  name,
  triggers: [{ schedule: { cron: "* * * * * *", ...(catchUp ? { catchUp } : {}) } }],
  steps: [{ name: "a", return: 1 }],
});

const replicas: { nc: NatsConnection; service: ScheduleService }[] = [];
async function startReplica() {
  const connection = await connect({ servers: server().url });
  const topology = await ensureTopology(connection);
  const service = await ScheduleService.start({
    js: topology.js,
    workflows: topology.workflows,
    log: testLogger,
  });
  const replica = { nc: connection, service };
  replicas.push(replica);
  return replica;
}
async function stopReplica(replica: { nc: NatsConnection; service: ScheduleService }) {
  await replica.service.stop();
  await replica.nc.close();
  replicas.splice(replicas.indexOf(replica), 1);
}
afterAll(async () => {
  for (const replica of [...replicas]) await stopReplica(replica);
});

const ticksOf = (workflow: string) => seen.filter((event) => event.subject === workflow);
const dueOf = (event: TriggerEvent) => Date.parse((event.data as { scheduledAt: string }).scheduledAt);

describe("due times", () => {
  it("lists the next fire times in the schedule's time zone", () => {
    const definition: WorkflowDefinition = {
      baton: "v1",
      name: "berlin",
      triggers: [{ schedule: { cron: "0 9 * * *", timezone: "Europe/Berlin" } }],
      steps: [{ name: "a", return: 1 }],
    };
    expect(nextFireTimes(definition, 2, new Date("2026-01-01T00:00:00Z"))).toEqual([
      "2026-01-01T08:00:00.000Z",
      "2026-01-02T08:00:00.000Z",
    ]);
  });

  it("answers GET /v1/workflows/{name} with the next fire times", async () => {
    await store.put(
      {
        baton: "v1",
        name: "nightly",
        triggers: [{ schedule: { cron: "0 3 * * *" } }],
        steps: [{ name: "a", return: 1 }],
      },
      "nightly",
    );
    // The route alone: it needs only the workflow store of the API's context.
    const app = fastify();
    for (const schema of sharedSchemas) app.addSchema(schema);
    await app.register(
      workflowRoutes({ executions: { workflows: store }, limits: defaultLimits } as unknown as ApiContext),
    );
    const { nextFires } = (await app.inject({ url: "/v1/workflows/nightly" })).json<{
      nextFires: string[];
    }>();
    await app.close();
    await store.remove("nightly");
    expect(nextFires).toHaveLength(5);
    expect(nextFires.every((time) => time.endsWith("T03:00:00.000Z"))).toBe(true);
  });

  it("plans missed times by catchUp and fires the ones since arming", () => {
    const at = (time: string) => new Date(`2026-01-01T00:00:${time}Z`);
    const plan = (catchUp: "none" | "latest" | "all") =>
      planDueTimes({ cron: "* * * * * *", catchUp }, at("00"), at("05"), at("07")).map(
        ({ due, fire }) => `${due.getUTCSeconds()}${fire ? "!" : ""}`,
      );
    expect(plan("none")).toEqual(["5", "6!", "7!"]);
    expect(plan("latest")).toEqual(["5!", "6!", "7!"]);
    expect(plan("all")).toEqual(["1!", "2!", "3!", "4!", "5!", "6!", "7!"]);
  });
});

it("fires each due time exactly once with two replicas", async () => {
  const [a, b] = [await startReplica(), await startReplica()];
  await store.put(everySecond("twice"), "twice");
  await waitUntil("five ticks", () => (ticksOf("twice").length >= 5 ? true : undefined), {
    timeoutMs: 15_000,
  });
  await store.remove("twice");
  await waitUntil("both replicas disarm", () =>
    a.service.armedWorkflows().includes("twice") || b.service.armedWorkflows().includes("twice")
      ? undefined
      : true,
  );
  const ids = ticksOf("twice").map((event) => event.id);
  expect(new Set(ids).size).toBe(ids.length);
  const dues = ticksOf("twice")
    .map(dueOf)
    .sort((x, y) => x - y);
  // Consecutive seconds: none skipped.
  for (let index = 1; index < dues.length; index++) expect(dues[index]! - dues[index - 1]!).toBe(1_000);
  expect(ticksOf("twice")[0]).toMatchObject({ source: "schedule", type: "tick", subject: "twice" });
  await stopReplica(a);
  await stopReplica(b);
}, 30_000);

describe.each(["none", "latest", "all"] as const)("catchUp: %s", (catchUp) => {
  it("handles the times missed while no engine ran", async () => {
    const name = `catch-${catchUp}`;
    const [a, b] = [await startReplica(), await startReplica()];
    await store.put(everySecond(name, catchUp), name);
    await waitUntil("a first tick", () => (ticksOf(name).length >= 1 ? true : undefined), {
      timeoutMs: 10_000,
    });
    await stopReplica(a);
    await stopReplica(b);
    const lastBefore = Math.max(...ticksOf(name).map(dueOf));
    const before = ticksOf(name).length;
    // The downtime itself: wall-clock time has to pass for due times to be missed.
    await waitUntil("three due times pass", () => (Date.now() >= lastBefore + 3_500 ? true : undefined));
    const restartedAt = Date.now();
    const replica = await startReplica();
    await waitUntil(
      "a tick after the restart",
      () => (ticksOf(name).some((event) => dueOf(event) > restartedAt) ? true : undefined),
      { timeoutMs: 10_000 },
    );
    await stopReplica(replica);
    const missed = ticksOf(name)
      .slice(before)
      .map(dueOf)
      .filter((due) => due <= restartedAt);
    const ids = ticksOf(name).map((event) => event.id);
    expect(new Set(ids).size).toBe(ids.length);
    if (catchUp === "none") expect(missed.filter((due) => due < restartedAt - 1_000)).toEqual([]);
    if (catchUp === "latest") {
      expect(missed.length).toBeLessThanOrEqual(1);
      expect(missed.every((due) => due > restartedAt - 1_000)).toBe(true);
    }
    if (catchUp === "all") {
      const wanted = [];
      for (let due = lastBefore + 1_000; due < restartedAt - 1_000; due += 1_000) wanted.push(due);
      expect(missed).toEqual(expect.arrayContaining(wanted));
      expect(wanted.length).toBeGreaterThanOrEqual(2);
    }
  }, 30_000);
});
