/**
 * Retention's own path (docs/operations.md, "Retention"): a finished execution's removal is a
 * message on BATON_RETENTION, not a timer, and the engine holds at most `retentionWindow` of them
 * parked at once: a week of finished executions never fills the timers' room for parked
 * messages; and the wake-ups an execution leaves armed go when it ends. Real nats-server and
 * orchestrator, the default retention (7 days).
 */
import { connect, type NatsConnection } from "nats";
import { afterAll, beforeAll, expect, it } from "vitest";
import { loadEngineConfig } from "../../engine/config.ts";
import {
  engineConsumers,
  retentionStream,
  retentionSubject,
  retentionWindow,
  timerIndexStream,
  timerIndexSubject,
} from "../../engine/nats/topology.ts";
import { dispatchCommands, type DispatchDeps } from "../../engine/orchestrator/dispatch-commands.ts";
import type { ExecutionRecord } from "../../engine/orchestrator/execution-record.ts";
import { Executions } from "../../engine/orchestrator/executions.ts";
import { Orchestrator } from "../../engine/orchestrator/orchestrator.ts";
import { streams, subjects } from "../../sdk/protocol.ts";
import { useNatsServer } from "../helpers/nats-server.ts";
import { waitUntil } from "../helpers/processes.ts";
import { testLogger } from "../helpers/test-logger.ts";

const server = useNatsServer();
let nc: NatsConnection;
let engine: Orchestrator;
let executions: Executions;

beforeAll(async () => {
  nc = await connect({ servers: server().url });
  engine = await Orchestrator.create(nc, loadEngineConfig({ NATS_URL: server().url }), testLogger);
  await engine.start();
  executions = await Executions.connect(nc);
  await executions.apply(`baton: v1
name: quick
steps:
  - { name: done, return: 1 }
`);
  await executions.apply(`baton: v1
name: gate
steps:
  - { name: approval, receive: { signal: go, timeout: 1h } }
`);
  await executions.apply(`baton: v1
name: gate-near
steps:
  - { name: approval, receive: { signal: go, timeout: 90s } }
`);
  await executions.apply(`baton: v1
name: pause
steps:
  - { name: nap, wait: 200ms }
  - { name: done, return: woke }
`);
});

afterAll(async () => {
  await engine?.stop();
  await nc?.close();
});

it("parks finished executions' removals on their own stream, a window at a time, and timers still fire", async () => {
  const count = retentionWindow + 44;
  const ids: string[] = [];
  for (let i = 0; i < count; i += 50)
    ids.push(
      ...(
        await Promise.all(
          Array.from({ length: Math.min(50, count - i) }, () => executions.start("quick", {})),
        )
      ).map((started) => started.id),
    );
  for (const id of ids) expect((await executions.waitForEnd(id, 30_000))?.status).toBe("succeeded");

  const jsm = await nc.jetstreamManager();
  // Every removal is on BATON_RETENTION, none among the timers.
  await waitUntil("every removal to be on BATON_RETENTION", async () => {
    const info = await jsm.streams.info(retentionStream);
    return info.state.messages === count ? true : undefined;
  });
  const removals = await jsm.streams.info(retentionStream, { subjects_filter: retentionSubject(">") });
  expect(Object.keys(removals.state.subjects ?? {}).sort()).toEqual(ids.map(retentionSubject).sort());
  const timers = await jsm.streams.info(streams.timers, { subjects_filter: subjects.allTimers });
  expect(Object.keys(timers.state.subjects ?? {}).filter((subject) => subject.endsWith(".expire"))).toEqual(
    [],
  );

  // The engine holds a window of them, parked until due; the rest wait unread.
  const consumer = await waitUntil("the retention window to fill", async () => {
    const info = await jsm.consumers.info(retentionStream, engineConsumers.retention);
    return info.num_ack_pending === retentionWindow ? info : undefined;
  });
  expect(consumer.num_pending).toBe(count - retentionWindow);
  expect(consumer.config.max_ack_pending).toBe(retentionWindow);

  // A user's timer is not behind them.
  const { id } = await executions.start("pause", {});
  const paused = await executions.waitForEnd(id, 30_000);
  expect(paused?.status).toBe("succeeded");
  expect(paused?.output).toBe("woke");
});

/** The executions among `ids` with a wake-up armed in the timer index, or on BATON_TIMERS. */
async function armedIn(where: "index" | "near", ids: string[]): Promise<string[]> {
  const jsm = await nc.jetstreamManager();
  const info =
    where === "index"
      ? await jsm.streams.info(timerIndexStream, { subjects_filter: timerIndexSubject("*", "*") })
      : await jsm.streams.info(streams.timers, { subjects_filter: subjects.allTimers });
  const armed = Object.keys(info.state.subjects ?? {});
  return ids.filter((id) => armed.some((subject) => subject.endsWith(`.${id}`)));
}

// Each arms a wake-up for its receive's timeout; the signal ends it long before. Due in an hour,
// it waits in the timer index (timer-index.test.ts); due in 90 s, it is parked among the timers.
it.each([
  { workflow: "gate", where: "index" as const },
  { workflow: "gate-near", where: "near" as const },
])(
  "removes the wake-ups an execution leaves armed when it ends ($where), so they hold no room until due",
  async ({ workflow, where }) => {
    const ids = (await Promise.all(Array.from({ length: 50 }, () => executions.start(workflow, {})))).map(
      (started) => started.id,
    );
    await waitUntil("every wake-up to be armed", async () =>
      (await armedIn(where, ids)).length === ids.length ? true : undefined,
    );
    await Promise.all(ids.map((id) => executions.signal(id, "go", { ok: true })));
    for (const id of ids) expect((await executions.waitForEnd(id, 30_000))?.status).toBe("succeeded");
    await waitUntil("the ended executions' wake-ups to be gone", async () =>
      (await armedIn(where, ids)).length === 0 ? true : undefined,
    );
    const jsm = await nc.jetstreamManager();
    await waitUntil("no timer to be parked", async () => {
      const info = await jsm.consumers.info(streams.timers, engineConsumers.timers);
      return info.num_ack_pending === 0 && info.num_pending === 0 ? true : undefined;
    });
  },
);

it("leaves a wake-up armed since the end (the execution retried) and everything behind it", async () => {
  // A finish sent again after the execution was retried and armed a new wake-up (an outbox
  // resent after a crash): only what the finish names, from the newest back, may go.
  const js = nc.jetstream();
  const jsm = await nc.jetstreamManager();
  const arm = async (execution: string, token: string) =>
    js.publish(
      subjects.timers(execution),
      JSON.stringify({
        execution,
        timer: "baton.wake",
        token,
        due: Date.now() + 3_600_000,
        event: { type: "baton.wake" },
      }),
    );
  const tokensOf = async (execution: string) => {
    const tokens: string[] = [];
    for (let seq = 1; ;) {
      const message = await jsm.streams
        .getMessage(streams.timers, { next_by_subj: subjects.timers(execution), seq } as never)
        .catch(() => undefined);
      if (!message) return tokens;
      tokens.push(message.json<{ token: string }>().token);
      seq = message.seq + 1;
    }
  };
  const finish = (execution: string, staleWakes: string[]) =>
    dispatchCommands(
      { js, nc, retentionMs: 7 * 86_400_000 } as unknown as DispatchDeps,
      { id: execution, endedAt: Date.now() } as unknown as ExecutionRecord,
      [{ type: "finish", params: { status: "succeeded", output: null, error: null, staleWakes } }],
    );

  const retried = "xretriedexecution00000001";
  await arm(retried, `${retried}.w1`);
  await arm(retried, `${retried}.w2`); // armed after the retry: not named by the old finish
  await finish(retried, [`${retried}.w1`]);
  expect(await tokensOf(retried)).toEqual([`${retried}.w1`, `${retried}.w2`]);

  const ended = "xendedexecution0000000001";
  await arm(ended, `${ended}.w1`);
  await arm(ended, `${ended}.w2`);
  await finish(ended, [`${ended}.w1`, `${ended}.w2`]);
  expect(await tokensOf(ended)).toEqual([]);
});
