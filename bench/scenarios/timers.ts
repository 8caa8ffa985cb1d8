/**
 * timers-1m: 1,000,000 wake-ups parked (due over the next day), then 100 executions with a
 * `wait: 2s`: how late their waits fire. Before the timer index, a million parked wake-ups held
 * every place among `engine_timers`' unacknowledged messages, and no other timer fired.
 *
 * The million are armed through the engine's own `armTimer` (the code a waiting execution's arm
 * runs), for executions that do not exist: parking a million real executions would take this
 * machine about ten minutes of starts (see `waiting-100k` for that cost), and what is measured
 * here is what the parked wake-ups do to the timers due soon. Each is the same message a real
 * wake-up is.
 */
import { defaultTimerSlotMs } from "../../engine/config.ts";
import { engineConsumers, engineStateBucket, timerIndexStream } from "../../engine/nats/topology.ts";
import { newExecutionId } from "../../engine/orchestrator/ids.ts";
import { armTimer } from "../../engine/orchestrator/timer-index.ts";
import { wakeTimer } from "../../engine/orchestrator/execution-record.ts";
import { streams } from "../../sdk/protocol.ts";
import { cpuData, formatCpu, startCpuMeter } from "../lib/cpu.ts";
import { memoryOf } from "../lib/processes.ts";
import { sized, verdict, type Scenario } from "../lib/scenario.ts";
import { withStack } from "../lib/stack.ts";
import { now, summarize } from "../lib/stats.ts";
import { pipelined } from "../lib/timing.ts";

const workflow = "bench-short-wait";
const waitMs = 2_000;
const shortWaitWorkflow = `baton: v1
name: ${workflow}
steps:
  - name: nap
    wait: ${waitMs}ms
  - name: done
    return: woke
`;
const shortWaits = 100;
const dayMs = 86_400_000;

export const timers: Scenario = {
  name: "timers-1m",
  summary: "1,000,000 wake-ups parked (due over a day), then 100 `wait: 2s` executions: how late they fire",
  async run({ options, log }) {
    const parked = sized(options, 1_000_000, 20_000);
    return withStack({ scenario: "timers-1m", workers: [] }, options, async (stack) => {
      const { nc, executions } = stack;
      const js = nc.jetstream();
      const jsm = await nc.jetstreamManager();
      const engineState = await js.views.kv(engineStateBucket);
      await executions.apply(shortWaitWorkflow);

      log(`timers-1m: parking ${parked.toLocaleString("en-US")} wake-ups`);
      const meter = startCpuMeter(stack.pids());
      const parkStart = now();
      const base = Date.now();
      await pipelined(parked, 512, async (index) => {
        const execution = newExecutionId();
        // Spread over a day, from ten minutes ahead: all beyond the near window.
        const due = base + 600_000 + Math.floor((index / parked) * dayMs);
        await armTimer(
          js,
          engineState,
          { execution, timer: wakeTimer, token: `${execution}.w1`, due, event: { type: wakeTimer } },
          defaultTimerSlotMs,
        );
      });
      const parkSeconds = (now() - parkStart) / 1_000;
      const index = await jsm.streams.info(timerIndexStream);
      const near = await jsm.consumers.info(streams.timers, engineConsumers.timers);
      log(`timers-1m: parked in ${parkSeconds.toFixed(1)} s; starting ${shortWaits} short waits`);

      // An end is seen in history as it is written; its wait was due 2 s after the start applied
      // (`startedAt`, the start event's time).
      const ids = Array.from({ length: shortWaits }, () => newExecutionId());
      const seen = ids.map((id) =>
        stack.history.expectEnd(id).then((end) => ({ ...end, wallAt: Date.now() })),
      );
      await Promise.all(ids.map((id) => executions.start(workflow, {}, { id })));
      const ends = await Promise.all(seen);
      const cpu = meter();
      const late: number[] = [];
      for (const [i, id] of ids.entries()) {
        const record = await executions.get(id);
        if (ends[i]!.status === "succeeded" && record)
          late.push(ends[i]!.wallAt - (record.startedAt + waitMs));
      }
      const lateness = summarize(late);
      const engineRss = stack.engine ? memoryOf(stack.engine.pid).rssMb : NaN;
      const count = (n: number) => n.toLocaleString("en-US");
      return [
        {
          scenario: "timers-1m",
          latency: lateness,
          result:
            `${count(parked)} parked in ${parkSeconds.toFixed(1)} s; ${late.length}/${shortWaits} short waits ended, ` +
            `fired max ${lateness.max.toFixed(0)} ms after due`,
          target: "100 short waits fire within 1 s of due, with 1,000,000 parked",
          met: parked < 1_000_000 ? "n/a" : verdict(late.length === shortWaits, lateness.max <= 1_000),
          notes: [
            ...(parked < 1_000_000 ? [`N = ${count(parked)}: the target is for 1,000,000`] : []),
            "latency = its end seen in history − (its start + 2 s): the wait's lateness, plus the write that ends the execution and the history publish",
            `wake-ups armed with the engine's armTimer for executions that do not exist, due from 10 min to a day ahead, 512 in flight`,
            `BATON_TIMER_INDEX holds ${count(index.state.messages)} messages (${(index.state.bytes / 1_048_576).toFixed(0)} MiB); ` +
              `engine_timers: ${count(near.num_ack_pending)} parked unacknowledged, ${count(near.num_pending)} unread`,
            `engine RSS ${engineRss.toFixed(0)} MB after`,
            formatCpu(cpu),
          ],
          data: {
            parked,
            parkSeconds,
            ended: late.length,
            indexMessages: index.state.messages,
            indexBytes: index.state.bytes,
            nearAckPending: near.num_ack_pending,
            engineRssMb: engineRss,
            ...cpuData(cpu),
          },
        },
      ];
    });
  },
};
