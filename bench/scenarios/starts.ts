/**
 * starts: executions started over HTTP, `POST /v1/workflows/{name}/executions` → 202, under load
 * from autocannon (a process of its own), against the API as a process of its own
 * (`run-api.ts --no-engine`) beside the engine process, both on the scenario's nats-server.
 * Beside it, in the same run and on the same server, two floors served by one fastify process
 * (bench/helpers/http-floor.ts): a route that answers 202 without touching NATS, and one that
 * first does the one JetStream publish a start cannot avoid.
 *
 * Each is loaded three times after a warm-up: at the target's rate (2,000 requests/s offered
 * over 32 connections, latencies corrected for coordinated omission), as fast as the answers come
 * (the same connections, each sending its next request when the last is answered), and one
 * request at a time (what one start costs with no queue). The workflow started returns at once;
 * the engine applies the starts while they arrive, and the row says how far behind it was.
 * The CPU of every process is measured over each run, also as CPU milliseconds per start.
 */
import { streams } from "../../sdk/protocol.ts";
import { cpuData, formatCpu } from "../lib/cpu.ts";
import { loadGeneratorInstalled, postLoad, type LoadResult } from "../lib/load.ts";
import { startApi, startHelper, stopProcess, type TestProcess } from "../lib/processes.ts";
import { sized, verdict, type Row, type Scenario } from "../lib/scenario.ts";
import { withStack } from "../lib/stack.ts";
import { now } from "../lib/stats.ts";
import { until } from "../lib/timing.ts";
import { payload } from "../lib/workflows.ts";

const workflow = "bench-starts";
const targetRate = 2_000;
const targetP99Ms = 10;
const connections = 32;
const target = `≥ ${targetRate.toLocaleString("en-US")}/s with p99 ≤ ${targetP99Ms} ms`;

export const starts: Scenario = {
  name: "starts",
  summary: `executions started over HTTP (202) under autocannon: at ${targetRate}/s offered and as fast as answered, beside two HTTP floors`,
  async run({ options, log }) {
    if (!loadGeneratorInstalled())
      return [
        {
          scenario: "starts",
          target,
          met: "not measured",
          notes: ["autocannon is not installed: run bash bench/load/setup.sh (npm run bench does it first)"],
        },
      ];
    return withStack({ scenario: "starts", workers: [] }, options, async (stack) => {
      await stack.executions.apply(
        `baton: v1\nname: ${workflow}\nsteps:\n  - name: done\n    return: started\n`,
      );
      const profileDir = options.profileDir === undefined ? undefined : `${options.profileDir}/starts/api`;
      const api = await startApi(stack.server.url, { name: "api", profileDir });
      let floor: TestProcess | undefined;
      try {
        floor = await startHelper("http-floor.ts", stack.server.url);
        const floorUrl = (await floor.waitForLine(/http floor ready (\S+)/))[1]!;
        const body = JSON.stringify(payload());
        const path = `/v1/workflows/${workflow}/executions`;
        const warmupSeconds = sized(options, 3, 1);
        const seconds = sized(options, 10, 3);
        const jsm = await stack.nc.jetstreamManager();
        const unapplied = async () => (await jsm.streams.info(streams.events)).state.messages;

        /** After the run as fast as answered: how far behind the engine was, and how long it took to catch up. */
        let engineNote = "";
        const catchUp = async () => {
          const behind = await unapplied();
          const loadEnded = now();
          await until("the engine to apply every start", async () => (await unapplied()) === 0, 300_000, 50);
          engineNote =
            `when the run as fast as answered stopped, the engine had ${behind.toLocaleString("en-US")} starts still ` +
            `to apply, and applied them all ${((now() - loadEnded) / 1_000).toFixed(1)} s later`;
        };

        const measure = async (
          name: string,
          url: string,
          pids: Record<string, number>,
          afterMax = catchUp,
        ) => {
          log(
            `${name}: ${warmupSeconds} s warm-up, ${seconds} s at ${targetRate}/s, ${seconds} s as fast as answered, ${seconds} s one at a time`,
          );
          await postLoad({ url, body, connections, seconds: warmupSeconds, pids });
          const atRate = await postLoad({ url, body, connections, seconds, rate: targetRate, pids });
          const atMost = await postLoad({ url, body, connections, seconds, pids });
          await afterMax();
          const alone = await postLoad({ url, body, connections: 1, seconds, pids });
          return { atRate, atMost, alone };
        };

        const floorPids = { floor: floor.pid, "nats-server": stack.server.pid };
        const nothing = () => Promise.resolve();
        const plain = await measure("floor.http-202", `${floorUrl}/plain${path}`, floorPids, nothing);
        const published = await measure(
          "floor.http-publish",
          `${floorUrl}/publish${path}`,
          floorPids,
          nothing,
        );
        const batonPids = { api: api.process.pid, ...stack.pids() };
        const baton = await measure("starts", `${api.url}${path}`, batonPids);

        const met = verdict(
          baton.atMost.perSecond >= targetRate,
          baton.atRate.latency.p99 <= targetP99Ms,
          baton.atRate.perSecond >= targetRate * 0.98,
          baton.atRate.not202 === 0 && baton.atMost.not202 === 0,
        );
        return [
          row("starts", baton.atRate, {
            target,
            met,
            extra: [
              `verdict: as fast as answered ${Math.round(baton.atMost.perSecond).toLocaleString("en-US")}/s (≥ ${targetRate}), ` +
                `and at ${targetRate}/s offered p99 ${baton.atRate.latency.p99} ms (≤ ${targetP99Ms}), no answer but 202`,
              "API: engine/api/run-api.ts --no-engine (fastify, no tokens); engine: baton engine; one-step workflow that returns at once",
              engineNote,
            ],
          }),
          row("starts (max)", baton.atMost, { extra: [engineNote] }),
          row("starts (1 connection)", baton.alone, {}),
          row("floor.http-publish", published.atRate, {
            extra: [
              "fastify route: parse the JSON body, one JetStream publish awaiting its ack (file storage, message id), 202",
            ],
          }),
          row("floor.http-publish (max)", published.atMost, {}),
          row("floor.http-publish (1 connection)", published.alone, {}),
          row("floor.http-202", plain.atRate, {
            extra: ["fastify route: parse the JSON body, 202 at once, no NATS"],
          }),
          row("floor.http-202 (max)", plain.atMost, {}),
          row("floor.http-202 (1 connection)", plain.alone, {}),
        ];
      } finally {
        if (floor) await stopProcess(floor);
        await stopProcess(api.process);
      }
    });
  },
};

function row(
  scenario: string,
  result: LoadResult,
  options: { target?: string; met?: Row["met"]; extra?: readonly string[] },
): Row {
  const mode = scenario.endsWith("(max)") ? "max" : scenario.endsWith("(1 connection)") ? "alone" : "rate";
  const fixedRate = mode === "rate";
  const perStart = Object.entries(result.cpu)
    .filter(([name]) => name !== "bench")
    .map(([name, share]) => `${name} ${(((share / 100) * 1_000) / Math.max(result.perSecond, 1)).toFixed(2)}`)
    .join(", ");
  return {
    scenario,
    latency: result.latency,
    throughput: `${Math.round(result.perSecond).toLocaleString("en-US")} starts/s`,
    result: `max ${result.latency.max} ms; ${result.not202} not 202`,
    target: options.target ?? (scenario.startsWith("floor") ? "(floor)" : "(diagnostic)"),
    met: options.met ?? "n/a",
    notes: [
      `autocannon, ${mode === "alone" ? 1 : connections} connection${mode === "alone" ? "" : "s"}, ` +
        (fixedRate
          ? `${targetRate.toLocaleString("en-US")} requests/s offered (latencies corrected for coordinated omission)`
          : "each connection sends its next request when the last is answered") +
        `, ${result.seconds.toFixed(1)} s, ${result.requests.toLocaleString("en-US")} answers ${JSON.stringify(result.statuses)}` +
        `${result.errors > 0 ? `, ${result.errors} errors (${result.timeouts} timeouts)` : ""}; ` +
        `the body is ${JSON.stringify(payload()).length} bytes of JSON; latencies in whole ms (autocannon's histogram)`,
      ...(options.extra ?? []),
      formatCpu(result.cpu),
      `CPU ms per start: ${perStart}`,
    ],
    data: {
      perSecond: result.perSecond,
      ...(fixedRate ? { offeredPerSecond: targetRate } : {}),
      requests: result.requests,
      seconds: result.seconds,
      not202: result.not202,
      errors: result.errors,
      timeouts: result.timeouts,
      ...cpuData(result.cpu),
    },
  };
}
