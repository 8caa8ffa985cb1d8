/**
 * starts: executions started over HTTP, `POST /v1/workflows/{name}/executions` → 202, under load
 * from autocannon (a process of its own), against the API as a process of its own
 * (`run-api.ts --no-engine`) beside the engine process, both on the scenario's nats-server.
 * Beside it, in the same run and on the same server, two floors served by one fastify process
 * (bench/helpers/http-floor.ts): a route that answers 202 without touching NATS, and one that
 * first does the one JetStream publish a start cannot avoid.
 *
 * Each is loaded three times after a warm-up, closed-loop (each connection sends its next
 * request when the last is answered): with 8 connections, where the target is judged (2,000/s
 * at p99 10 ms is 8 requests in flight at 4 ms each), with 64 (how far it goes), and with 1
 * (what one start costs with no queue). autocannon's own `--overallRate` is not used: it sends
 * each second's quota in a burst and corrects latencies with a 1 ms interval, which says little.
 * The workflow started returns at once; the engine applies the starts while they arrive, and the
 * row says how far behind it was. The CPU of every process is measured over each run, also as
 * CPU milliseconds per start.
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
const target = `≥ ${targetRate.toLocaleString("en-US")}/s with p99 ≤ ${targetP99Ms} ms`;
/** The runs, by their connections: the first is where the target is judged. */
const runs = { judged: 8, most: 64, alone: 1 } as const;
type Run = keyof typeof runs;

export const starts: Scenario = {
  name: "starts",
  summary: `executions started over HTTP (202) under autocannon with ${runs.judged}, ${runs.most} and ${runs.alone} connections, beside two HTTP floors`,
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

        /** After the run with the most connections: how far behind the engine was, and how long it took to catch up. */
        let engineNote = "";
        const catchUp = async () => {
          const behind = await unapplied();
          const loadEnded = now();
          await until("the engine to apply every start", async () => (await unapplied()) === 0, 300_000, 50);
          engineNote =
            `when the run with ${runs.most} connections stopped, the engine had ${behind.toLocaleString("en-US")} starts still ` +
            `to apply, and applied them all ${((now() - loadEnded) / 1_000).toFixed(1)} s later`;
        };

        const measure = async (
          name: string,
          url: string,
          pids: Record<string, number>,
          afterMost = catchUp,
        ) => {
          log(
            `${name}: ${warmupSeconds} s warm-up, then ${seconds} s each with ${runs.judged}, ${runs.most} and ${runs.alone} connections`,
          );
          await postLoad({ url, body, connections: runs.judged, seconds: warmupSeconds, pids });
          const judged = await postLoad({ url, body, connections: runs.judged, seconds, pids });
          const most = await postLoad({ url, body, connections: runs.most, seconds, pids });
          await afterMost();
          const alone = await postLoad({ url, body, connections: runs.alone, seconds, pids });
          return { judged, most, alone };
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
          baton.judged.perSecond >= targetRate,
          baton.judged.latency.p99 <= targetP99Ms,
          baton.judged.not202 === 0,
        );
        return [
          row("starts", "judged", baton.judged, {
            target,
            met,
            extra: [
              "API: engine/api/run-api.ts --no-engine (fastify, no tokens); engine: baton engine; a one-step workflow that returns at once",
            ],
          }),
          row("starts", "most", baton.most, { extra: [engineNote] }),
          row("starts", "alone", baton.alone, {}),
          row("floor.http-publish", "judged", published.judged, {
            extra: [
              "fastify route: parse the JSON body, one JetStream publish awaiting its ack (file storage, message id), 202",
            ],
          }),
          row("floor.http-publish", "most", published.most, {}),
          row("floor.http-publish", "alone", published.alone, {}),
          row("floor.http-202", "judged", plain.judged, {
            extra: ["fastify route: parse the JSON body, 202 at once, no NATS"],
          }),
          row("floor.http-202", "most", plain.most, {}),
          row("floor.http-202", "alone", plain.alone, {}),
        ];
      } finally {
        if (floor) await stopProcess(floor);
        await stopProcess(api.process);
      }
    });
  },
};

function row(
  name: string,
  run: Run,
  result: LoadResult,
  options: { target?: string; met?: Row["met"]; extra?: readonly string[] },
): Row {
  const connections = runs[run];
  const perStart = Object.entries(result.cpu)
    .filter(([process]) => process !== "bench")
    .map(([process, share]) => `${process} ${((share * 10) / Math.max(result.perSecond, 1)).toFixed(2)}`)
    .join(", ");
  return {
    scenario: run === "judged" ? name : `${name} (${connections} connection${connections === 1 ? "" : "s"})`,
    latency: result.latency,
    throughput: `${Math.round(result.perSecond).toLocaleString("en-US")} starts/s`,
    result: `max ${result.latency.max} ms; ${result.not202} not 202`,
    target: options.target ?? (name.startsWith("floor") ? "(floor)" : "(diagnostic)"),
    met: options.met ?? "n/a",
    notes: [
      `autocannon, ${connections} connection${connections === 1 ? "" : "s"}, each sending its next request when the last is answered, ` +
        `${result.seconds.toFixed(1)} s, ${result.requests.toLocaleString("en-US")} answers ${JSON.stringify(result.statuses)}` +
        `${result.errors > 0 ? `, ${result.errors} errors (${result.timeouts} timeouts)` : ""}; ` +
        `the body is ${JSON.stringify(payload()).length} bytes of JSON; latencies in whole ms (autocannon's histogram)`,
      ...(options.extra ?? []),
      formatCpu(result.cpu),
      `CPU ms per start: ${perStart}`,
    ],
    data: {
      connections,
      perSecond: result.perSecond,
      requests: result.requests,
      seconds: result.seconds,
      not202: result.not202,
      errors: result.errors,
      timeouts: result.timeouts,
      ...cpuData(result.cpu),
    },
  };
}
