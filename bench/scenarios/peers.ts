/**
 * peers: the same 3-step and 10-step chains of no-op steps on Baton, on Restate and on BullMQ, in
 * the same run, each on a fresh server with its functions in a separate process (bench/lib/peers.ts).
 *
 * - Baton: a workflow of `noop` calls, as `chain-10` (engine process, worker process, the bench
 *   as the client over NATS).
 * - Restate: a `Chain/run` handler that calls `Step/noop` once per step, each a separate service
 *   call (bench/peers/restate-service.mjs), called through the HTTP ingress.
 * - BullMQ: a flow of N nested jobs (a parent runs once its child has completed), a no-op
 *   processor in a worker process (bench/peers/bullmq-worker.mjs), awaited with QueueEvents.
 *
 * For each: one chain at a time after a warm-up (p50/p90/p99), then 32 chains in flight for a
 * fixed window (chains/s, steps/s, and the latency under that load). Payloads of about 256 bytes.
 */
import { newExecutionId } from "../../engine/orchestrator/ids.ts";
import { cpuData, formatCpu, startCpuMeter, type CpuShares } from "../lib/cpu.ts";
import {
  bullmqVersions,
  peersMissing,
  redisPersistence,
  restateVersions,
  withBullmq,
  withRestate,
} from "../lib/peers.ts";
import { sampleSequentially } from "../lib/sampling.ts";
import { sized, type BenchContext, type Row, type Scenario, type Verdict } from "../lib/scenario.ts";
import { withStack } from "../lib/stack.ts";
import { now, summarize, type Summary } from "../lib/stats.ts";
import { sleep, withTimeout } from "../lib/timing.ts";
import { chainWorkflow, payload } from "../lib/workflows.ts";

const chainLengths = [3, 10] as const;
const inFlight = 32;
/** In run order and table order; `restate-fsync` is a diagnostic, not one of the peers Baton is held to. */
const systems = ["baton", "restate", "bullmq", "restate-fsync"] as const;
const comparedWith = ["restate", "bullmq"] as const;
type System = (typeof systems)[number];
const callTimeoutMs = 30_000;

/** What one system did with one chain length. */
interface Measured {
  readonly sequential: Summary;
  readonly load: LoadResult;
  /** Baton only: the same sequential runs timed to the end in history (without the client's await). */
  readonly endInHistory?: Summary;
}

interface LoadResult {
  readonly chainsPerSecond: number;
  readonly completed: number;
  readonly windowSeconds: number;
  /** Latencies of the chains that began and ended in the window. */
  readonly latency: Summary | undefined;
  readonly cpu: CpuShares;
}

interface Sizes {
  readonly warmup: number;
  readonly samples: number;
  readonly loadWarmupMs: number;
  readonly loadMeasureMs: number;
}

/**
 * `inFlight` client loops, each starting a chain as soon as its previous one ended: a warm-up,
 * then a window in which the chains that end are counted.
 */
async function underLoad(
  sizes: Sizes,
  pids: Record<string, number>,
  runChain: () => Promise<void>,
): Promise<LoadResult> {
  let phase: "warmup" | "measure" | "drain" = "warmup";
  let completed = 0;
  const latencies: number[] = [];
  const loop = async (): Promise<void> => {
    while (phase !== "drain") {
      const startedIn = phase;
      const started = now();
      try {
        await runChain();
      } catch (error) {
        phase = "drain"; // stop the other loops too
        throw error;
      }
      if (phase === "measure") {
        completed++;
        if (startedIn === "measure") latencies.push(now() - started);
      }
    }
  };
  const running = Promise.all(Array.from({ length: inFlight }, loop));
  await Promise.race([sleep(sizes.loadWarmupMs), running]);
  phase = "measure";
  const cpu = startCpuMeter(pids);
  const windowStarted = now();
  await Promise.race([sleep(sizes.loadMeasureMs), running]);
  const windowSeconds = (now() - windowStarted) / 1_000;
  const shares = cpu();
  const counted = completed;
  phase = "drain";
  await running;
  return {
    chainsPerSecond: counted / windowSeconds,
    completed: counted,
    windowSeconds,
    latency: latencies.length > 0 ? summarize(latencies) : undefined,
    cpu: shares,
  };
}

async function measureBaton(context: BenchContext, sizes: Sizes): Promise<Map<number, Measured>> {
  const { options, log } = context;
  return withStack({ scenario: "peers" }, options, async (stack) => {
    const { executions, history } = stack;
    const input = payload();
    const results = new Map<number, Measured>();
    for (const steps of chainLengths) {
      const workflow = `bench-peers-chain-${steps}`;
      await executions.apply(chainWorkflow(workflow, steps));
      log(`peers: baton chain-${steps}, ${sizes.samples} one at a time`);
      const client: number[] = [];
      const seen: number[] = [];
      for (let i = 0; i < sizes.warmup + sizes.samples; i++) {
        const id = newExecutionId();
        const end = history.expectEnd(id);
        const started = now();
        await executions.start(workflow, input, { id });
        const record = await executions.waitForEnd(id, callTimeoutMs);
        const resulted = now();
        const ended = await withTimeout(end, callTimeoutMs, `the end of ${id} in its history`);
        if (record?.status !== "succeeded")
          throw new Error(`execution ${id} ended ${record?.status ?? "not at all"}`);
        if (i < sizes.warmup) continue;
        client.push(resulted - started);
        seen.push(ended.at - started);
      }
      log(`peers: baton chain-${steps}, ${inFlight} in flight`);
      // Under load the client waits on the history watch, as `steps` does: waitForEnd opens a KV
      // watch per call, a cost of today's client API rather than of the engine.
      const load = await underLoad(sizes, stack.pids(), async () => {
        const id = newExecutionId();
        const end = history.expectEnd(id);
        await executions.start(workflow, input, { id });
        const ended = await withTimeout(end, callTimeoutMs, `the end of ${id}`);
        if (ended.status !== "succeeded") throw new Error(`execution ${id} ended ${ended.status}`);
      });
      results.set(steps, { sequential: summarize(client), endInHistory: summarize(seen), load });
    }
    return results;
  });
}

async function measureRestate(
  context: BenchContext,
  sizes: Sizes,
  fsync: boolean,
): Promise<Map<number, Measured>> {
  const { log } = context;
  const label = fsync ? "restate-fsync" : "restate";
  return withRestate({ fsync }, async (restate) => {
    const input = payload();
    const results = new Map<number, Measured>();
    for (const steps of chainLengths) {
      const runChain = async (): Promise<void> => void (await restate.runChain(steps, input));
      log(`peers: ${label} chain-${steps}, ${sizes.samples} one at a time`);
      const sequential = summarize(await sampleSequentially(sizes, runChain));
      log(`peers: ${label} chain-${steps}, ${inFlight} in flight`);
      const load = await underLoad(sizes, restate.pids(), runChain);
      results.set(steps, { sequential, load });
    }
    return results;
  });
}

async function measureBullmq(context: BenchContext, sizes: Sizes): Promise<Map<number, Measured>> {
  const { log } = context;
  return withBullmq(inFlight, async (bullmq) => {
    const input = payload();
    const results = new Map<number, Measured>();
    for (const steps of chainLengths) {
      const runChain = (): Promise<void> => bullmq.runChain(steps, input);
      log(`peers: bullmq chain-${steps}, ${sizes.samples} one at a time`);
      const sequential = summarize(await sampleSequentially(sizes, runChain));
      log(`peers: bullmq chain-${steps}, ${inFlight} in flight`);
      const load = await underLoad(sizes, bullmq.pids(), runChain);
      results.set(steps, { sequential, load });
    }
    return results;
  });
}

const rate = (value: number): string => Math.round(value).toLocaleString("en-US");
const ms = (value: number): string => (value >= 10 ? value.toFixed(1) : value.toFixed(2));

function measuredRow(
  system: System,
  steps: number,
  measured: Measured,
  verdict: Verdict,
  target: string,
): Row {
  const { sequential, load, endInHistory } = measured;
  return {
    scenario: `peers.${system}.chain-${steps}`,
    latency: sequential,
    throughput: `${rate(load.chainsPerSecond)} chains/s`,
    result: `${rate(load.chainsPerSecond * steps)} steps/s`,
    target,
    met: verdict,
    notes: [
      ...(endInHistory === undefined
        ? []
        : [
            `one at a time: start → waitForEnd (the client API); to the end in history p50 ${ms(endInHistory.p50)} ms, p99 ${ms(endInHistory.p99)} ms`,
          ]),
      `${inFlight} in flight: ${load.completed} chains ended in ${load.windowSeconds.toFixed(1)} s` +
        (load.latency === undefined
          ? ""
          : `, latency p50 ${ms(load.latency.p50)} ms, p99 ${ms(load.latency.p99)} ms`),
      formatCpu(load.cpu),
    ],
    data: {
      chainsPerSecond: load.chainsPerSecond,
      stepsPerSecond: load.chainsPerSecond * steps,
      completedInWindow: load.completed,
      windowSeconds: load.windowSeconds,
      ...(load.latency === undefined ? {} : { loadP50Ms: load.latency.p50, loadP99Ms: load.latency.p99 }),
      ...(endInHistory === undefined
        ? {}
        : { endInHistoryP50Ms: endInHistory.p50, endInHistoryP99Ms: endInHistory.p99 }),
      ...cpuData(load.cpu),
    },
  };
}

const howMeasured: Record<System, string> = {
  baton:
    "a workflow of `noop` calls, an engine and a worker process, the client API over NATS; JetStream acks on " +
    "nats-server 2.9.10 = page cache, not fsync'd (see the durability note)",
  restate:
    "Chain/run calling Step/noop once per step (separate service calls), service process on the TypeScript SDK, " +
    "called through the HTTP ingress; restate-server defaults (one node, 24 partitions) except durability: the log " +
    "server's WAL is written but not fsync'd (acks = page cache, as nats-server 2.9.10's)",
  "restate-fsync":
    "the same with restate-server's default durability, the log server fsyncing its WAL before acknowledging " +
    "(a diagnostic: what that fsync costs on this disk; Baton's target is against `restate`)",
  bullmq:
    `a flow of N nested jobs on one queue, a worker process with concurrency ${inFlight} and a no-op processor ` +
    `(returns its data; each job carries the payload, outputs are not passed along; the last 1,000 completed jobs ` +
    `are kept), awaited with QueueEvents; ` +
    `redis-server ${redisPersistence}`,
};

export const peers: Scenario = {
  name: "peers",
  summary: "the same 3- and 10-step chains on Baton, Restate and BullMQ flows, in the same run",
  async run(context) {
    const { options, log } = context;
    const sizes: Sizes = {
      warmup: sized(options, 30, 5),
      samples: sized(options, 400, 30),
      loadWarmupMs: sized(options, 5_000, 2_000),
      loadMeasureMs: sized(options, 20_000, 4_000),
    };
    const missing = peersMissing();
    const measurers: Record<System, (c: BenchContext, s: Sizes) => Promise<Map<number, Measured>>> = {
      baton: measureBaton,
      restate: (c, s) => measureRestate(c, s, false),
      bullmq: measureBullmq,
      "restate-fsync": (c, s) => measureRestate(c, s, true),
    };
    const results = new Map<System, Map<number, Measured> | { error: string } | { missing: string }>();
    for (const system of systems) {
      if (system !== "baton" && missing !== undefined) {
        results.set(system, { missing });
        continue;
      }
      try {
        results.set(system, await measurers[system](context, sizes));
      } catch (error) {
        const message = error instanceof Error ? error.message.split("\n")[0]! : String(error);
        log(`peers: ${system} failed: ${error instanceof Error ? (error.stack ?? message) : message}`);
        results.set(system, { error: message });
      }
    }

    const rows: Row[] = [];
    const comparisons: string[] = [];
    const verdicts: boolean[] = [];
    const batonTarget = "p50 and throughput better than Restate's and BullMQ's";
    for (const steps of chainLengths) {
      const of = (system: System): Measured | undefined => {
        const result = results.get(system);
        return result instanceof Map ? result.get(steps) : undefined;
      };
      const baton = of("baton");
      const peersMeasured = comparedWith.filter((system) => of(system) !== undefined);
      let batonVerdict: Verdict = "n/a";
      if (baton !== undefined && peersMeasured.length > 0) {
        const better = peersMeasured.every((system) => {
          const peer = of(system)!;
          return (
            baton.sequential.p50 < peer.sequential.p50 &&
            baton.load.chainsPerSecond > peer.load.chainsPerSecond
          );
        });
        verdicts.push(better);
        batonVerdict = better ? "yes" : "no";
        const ratios = (value: (m: Measured) => number): string =>
          peersMeasured
            .map((system) => `${system} ${(value(baton) / value(of(system)!)).toFixed(2)}×`)
            .join(", ");
        comparisons.push(
          `chain-${steps}: p50 ${ratios((m) => m.sequential.p50)}; chains/s ${ratios((m) => m.load.chainsPerSecond)}`,
        );
      }
      for (const system of systems) {
        const result = results.get(system);
        const measured = of(system);
        const name = `peers.${system}.chain-${steps}`;
        const target =
          system === "baton" ? batonTarget : system === "restate-fsync" ? "(peer, diagnostic)" : "(peer)";
        if (measured !== undefined)
          rows.push(measuredRow(system, steps, measured, system === "baton" ? batonVerdict : "n/a", target));
        else if (result !== undefined && "missing" in result)
          rows.push({ scenario: name, target, met: "not measured", notes: [result.missing] });
        else
          rows.push({
            scenario: name,
            target,
            met: "error",
            notes: [`failed: ${result !== undefined && "error" in result ? result.error : "no result"}`],
          });
      }
    }

    const restate = restateVersions();
    const bullmq = bullmqVersions();
    rows.push({
      scenario: "peers",
      result: comparisons.length > 0 ? `Baton ÷ peer: ${comparisons.join(" | ")}` : undefined,
      target: "Baton's p50 and throughput better than both",
      met: verdicts.length === 0 ? "n/a" : verdicts.every(Boolean) ? "yes" : "no",
      notes: [
        `p50/p90/p99: one chain at a time, ${sizes.samples} after ${sizes.warmup} discarded; throughput: ` +
          `${inFlight} chains in flight, ${sizes.loadMeasureMs / 1_000} s window after ${sizes.loadWarmupMs / 1_000} s warm-up; ` +
          `steps/s = chains/s × steps; payload ${JSON.stringify(payload()).length} bytes; each system on its own fresh server, one after the other`,
        "the result column is Baton's number divided by the peer's: below 1× is better for Baton at p50, above 1× for chains/s",
        ...systems.map((system) => `${system}: ${howMeasured[system]}`),
        `versions: restate-server ${restate.server}, @restatedev/restate-sdk ${restate.sdk}, bullmq ${bullmq.bullmq}, ` +
          `ioredis ${bullmq.ioredis}, redis-server ${bullmq.redis}`,
      ],
      data: {
        restateServer: restate.server,
        restateSdk: restate.sdk,
        bullmq: bullmq.bullmq,
        ioredis: bullmq.ioredis,
        redisServer: bullmq.redis,
        inFlight,
      },
    });
    return rows;
  },
};
