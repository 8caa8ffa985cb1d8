/**
 * The timer index (docs/operations.md, "Timers"): wake-ups due beyond the near window wait unread
 * on BATON_TIMER_INDEX, not parked among `engine_timers`' unacknowledged messages, so any number
 * of far timers leaves room for those due soon; slots are promoted as they come near, also
 * after every engine was away; an ended execution's far wake-up goes with it. Real nats-server
 * and orchestrators.
 */
import { connect, type NatsConnection } from "nats";
import { afterAll, beforeAll, beforeEach, expect, it } from "vitest";
import { loadEngineConfig } from "../../engine/config.ts";
import {
  engineConsumers,
  engineStateBucket,
  timerIndexStream,
  timerIndexSubject,
} from "../../engine/nats/topology.ts";
import { Executions } from "../../engine/orchestrator/executions.ts";
import { Orchestrator } from "../../engine/orchestrator/orchestrator.ts";
import { armTimer, goesToIndex, promotedKey, slotStart } from "../../engine/orchestrator/timer-index.ts";
import { wakeTimer } from "../../engine/orchestrator/execution-record.ts";
import { streams, subjects } from "../../sdk/protocol.ts";
import { useNatsServer } from "../helpers/nats-server.ts";
import { waitUntil } from "../helpers/processes.ts";
import { testLogger } from "../helpers/test-logger.ts";

const server = useNatsServer();
let nc: NatsConnection;
let executions: Executions;
const engines: Orchestrator[] = [];

/**
 * The index's slots shortened from a minute (`BATON_TEST_TIMER_SLOT_MS`), so that slots pass in
 * a test. Every engine of the file uses the same: engines promote a slot ahead of time.
 */
const slotMs = 400;

async function startEngine(): Promise<Orchestrator> {
  const env = { NATS_URL: server().url, BATON_TEST_TIMER_SLOT_MS: String(slotMs) };
  const engine = await Orchestrator.create(nc, loadEngineConfig(env), testLogger);
  await engine.start();
  engines.push(engine);
  return engine;
}

const indexed = async (execution?: string) => {
  const jsm = await nc.jetstreamManager();
  const info = await jsm.streams.info(timerIndexStream, { subjects_filter: timerIndexSubject("*", "*") });
  const subjects = Object.keys(info.state.subjects ?? {});
  return execution === undefined ? subjects : subjects.filter((subject) => subject.endsWith(`.${execution}`));
};

beforeAll(async () => {
  nc = await connect({ servers: server().url });
  executions = await Executions.connect(nc);
  await executions.apply(`baton: v1
name: long-nap
steps:
  - { name: nap, wait: 1h }
  - { name: done, return: woke }
`);
  await executions.apply(`baton: v1
name: short-nap
steps:
  - { name: nap, wait: 1s }
  - { name: done, return: woke }
`);
  await executions.apply(`baton: v1
name: nap
steps:
  - { name: nap, wait: { until: "\${ $input.until }" } }
  - { name: done, return: woke }
`);
});

/** Each test starts its own engines: those of a test that failed half-way are stopped first. */
async function stopEngines(): Promise<void> {
  for (const engine of engines.splice(0)) await engine.stop();
}

beforeEach(stopEngines);

afterAll(async () => {
  await stopEngines();
  await nc?.close();
});

it("keeps far wake-ups out of the parked timers, so a full room of them never holds back one due soon", async () => {
  await startEngine();
  const jsm = await nc.jetstreamManager();
  // The room for parked timers made small (it is 1,000,000), so that filling it takes 30
  // executions rather than a million. Without the index, their wake-ups take all 20 places and
  // the short wait below is never delivered.
  await jsm.consumers.update(streams.timers, engineConsumers.timers, { max_ack_pending: 20 });
  const parked = await Promise.all(Array.from({ length: 30 }, () => executions.start("long-nap", {})));
  await waitUntil(
    "every long nap to arm its wake-up",
    async () => {
      const records = await Promise.all(parked.map(({ id }) => executions.get(id)));
      return records.every((record) => Object.keys(record?.wakes ?? {}).length === 1) ? true : undefined;
    },
    { timeoutMs: 30_000 },
  );

  const { id } = await executions.start("short-nap", {});
  const ended = await executions.waitForEnd(id, 30_000);
  expect(ended?.status).toBe("succeeded");
  expect(ended?.output).toBe("woke");

  // The long naps' wake-ups wait in the index, none parked among the timers.
  await waitUntil("every long nap's wake-up to be in the index", async () =>
    (await indexed()).length === parked.length ? true : undefined,
  );
  const timers = await jsm.consumers.info(streams.timers, engineConsumers.timers);
  expect(timers.num_ack_pending + timers.num_pending).toBe(0);

  // A cancelled long nap's wake-up leaves the index with it.
  const [first] = parked;
  await executions.cancel(first!.id);
  expect((await executions.waitForEnd(first!.id, 30_000))?.status).toBe("cancelled");
  await waitUntil("the cancelled execution's wake-up to leave the index", async () =>
    (await indexed(first!.id)).length === 0 ? true : undefined,
  );
  const stillIndexed = await indexed();
  expect(
    parked.filter(({ id: other }) => stillIndexed.some((subject) => subject.endsWith(`.${other}`))),
  ).toHaveLength(parked.length - 1);
  for (const { id: other } of parked.slice(1)) await executions.cancel(other);
  await jsm.consumers.update(streams.timers, engineConsumers.timers, { max_ack_pending: 1_000_000 });
});

it("promotes a slot as it comes near: the wake-up fires on time and the slot is purged", async () => {
  await startEngine();
  const wait = 5_000;
  expect(goesToIndex(Date.now() + wait, Date.now(), slotMs)).toBe(true);
  const started = Date.now();
  const { id } = await executions.start("nap", { until: new Date(started + wait).toISOString() });
  await waitUntil("the wake-up to wait in the index", async () =>
    (await indexed(id)).length === 1 ? true : undefined,
  );
  const ended = await executions.waitForEnd(id, 30_000);
  expect(ended?.status).toBe("succeeded");
  expect(Date.now() - started).toBeGreaterThanOrEqual(wait);
  await waitUntil("the promoted slot to be purged", async () =>
    (await indexed(id)).length === 0 ? true : undefined,
  );
});

it("promotes the slots that passed while no engine ran, at the next start", async () => {
  const engine = await startEngine();
  const { id } = await executions.start("nap", { until: new Date(Date.now() + 5_000).toISOString() });
  await waitUntil("the wake-up to wait in the index", async () =>
    (await indexed(id)).length === 1 ? true : undefined,
  );
  const due = (await executions.get(id))!.wakes;
  const dueAt = Math.max(...Object.values(due ?? {}));
  await engine.stop();
  const kv = await nc.jetstream().views.kv(engineStateBucket);
  const before = (await kv.get(promotedKey))!.json<{ promoted: number }>().promoted;
  // The engine is away until well past the wake-up's slot (time passing is the point here).
  await waitUntil(
    "the wake-up's due time to pass",
    () => (Date.now() > dueAt + 3 * slotMs ? true : undefined),
    {
      timeoutMs: 30_000,
    },
  );
  expect((await kv.get(promotedKey))!.json<{ promoted: number }>().promoted).toBe(before);

  await startEngine();
  const ended = await executions.waitForEnd(id, 30_000);
  expect(ended?.status).toBe("succeeded");
  expect(ended?.output).toBe("woke");
  // The cursor moves once the slot is promoted (its wake-up may fire first).
  await waitUntil("the cursor to pass the wake-up's slot", async () =>
    (await kv.get(promotedKey))!.json<{ promoted: number }>().promoted > dueAt - slotMs ? true : undefined,
  );
});

it("arms near as well a wake-up whose slot the cursor has passed (an engine whose clock runs ahead promoted it)", async () => {
  const js = nc.jetstream();
  const kv = await js.views.kv(engineStateBucket);
  const before = await kv.get(promotedKey);
  const now = Date.now();
  // Another engine, its clock ten slots ahead, has promoted that far.
  await kv.put(promotedKey, JSON.stringify({ promoted: slotStart(now + 10 * slotMs, slotMs) }));
  try {
    const execution = "xskewedclockexecution0001";
    const due = now + 5 * slotMs;
    expect(goesToIndex(due, Date.now(), slotMs)).toBe(true);
    await armTimer(
      js,
      kv,
      { execution, timer: wakeTimer, token: `${execution}.w1`, due, event: { type: wakeTimer } },
      slotMs,
    );
    const jsm = await nc.jetstreamManager();
    const near = await jsm.streams
      .getMessage(streams.timers, { last_by_subj: subjects.timers(execution) })
      .catch(() => undefined);
    expect(near?.json<{ token: string }>().token).toBe(`${execution}.w1`);
  } finally {
    if (before) await kv.put(promotedKey, before.value);
  }
});

it("drops a malformed timer for good instead of failing on it at every delivery", async () => {
  await startEngine();
  const js = nc.jetstream();
  const execution = "xmalformedtimer000000001";
  // Due, well-formed but for its missing event: an engine could never fire it.
  await js.publish(
    subjects.timers(execution),
    JSON.stringify({ execution, token: `${execution}.w1`, due: 0 }),
  );
  await js.publish(subjects.timers(execution), "{ not json");
  const jsm = await nc.jetstreamManager();
  await waitUntil("the malformed timers to be gone, neither pending nor held", async () => {
    const stream = await jsm.streams.info(streams.timers, { subjects_filter: subjects.timers(execution) });
    const consumer = await jsm.consumers.info(streams.timers, engineConsumers.timers);
    return (stream.state.subjects?.[subjects.timers(execution)] ?? 0) === 0 && consumer.num_ack_pending === 0
      ? true
      : undefined;
  });
});
