/**
 * tracing: what OpenTelemetry costs, off and on, in the same run.
 *
 * - `tracing.off` and `tracing.on`: the chain-10 measurement (client start → result, one
 *   execution at a time) on two fresh stacks whose engine and worker are `baton engine` and
 *   `baton worker`, without and with `OTEL_EXPORTER_OTLP_ENDPOINT` (OTLP/HTTP protobuf, the
 *   default, to a sink in this process that reads and discards every export). The `chain-10` row
 *   of a full run is another "off" measurement (bare worker kit), a yardstick for run-to-run noise.
 * - `tracing.off (per step)`: the code tracing adds to each step when it is off, timed in this
 *   process (no SDK registered here, as in an engine or worker without OTEL_*): the worker's
 *   span start/end through the no-op API, the orchestrator's untraced plan and export calls.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { headers as natsHeaders } from "nats";
import { newExecutionId } from "../../engine/orchestrator/ids.ts";
import { traceTransition } from "../../engine/orchestrator/execution-spans.ts";
import { exportPlannedSpans } from "../../engine/telemetry/tracing.ts";
import { compileWorkflow } from "../../engine/workflow/compile/compile-workflow.ts";
import { validateWorkflowText } from "../../engine/workflow/validate.ts";
import { startExecution } from "../../engine/orchestrator/apply-event.ts";
import { endTaskSpan, startTaskSpan } from "../../sdk/worker/task-span.ts";
import { protocolVersion, subjects, type TaskEnvelope } from "../../sdk/protocol.ts";
import { sized, type Row, type Scenario } from "../lib/scenario.ts";
import { withStack } from "../lib/stack.ts";
import { now, summarize, type Summary } from "../lib/stats.ts";
import { chainWorkflow, payload } from "../lib/workflows.ts";
import type { BenchOptions } from "../lib/options.ts";

const workflow = "bench-chain-10";
const sampleTimeoutMs = 15_000;

/** An OTLP/HTTP endpoint that takes every export and keeps only counts. */
async function startSink(): Promise<{
  endpoint: string;
  exports: () => number;
  bytes: () => number;
  close(): Promise<void>;
}> {
  let exports = 0;
  let bytes = 0;
  const server = createServer((request, response) => {
    request.on("data", (chunk: Buffer) => (bytes += chunk.length));
    request.on("end", () => {
      exports += 1;
      response.writeHead(200, { "content-type": "application/x-protobuf" }).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    exports: () => exports,
    bytes: () => bytes,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

async function timeChains(
  options: BenchOptions,
  env: Record<string, string>,
  label: string,
  log: (m: string) => void,
): Promise<Summary> {
  return withStack(
    { scenario: `tracing-${label}`, engineEnv: env, workers: [{ cli: true, env }] },
    options,
    async ({ executions }) => {
      await executions.apply(chainWorkflow(workflow, 10));
      const input = payload();
      const warmup = sized(options, 30, 5);
      const samples = sized(options, 300, 30);
      log(`tracing (${label}): ${samples} chain-10 executions, one at a time`);
      const latencies: number[] = [];
      for (let i = 0; i < warmup + samples; i++) {
        const id = newExecutionId();
        const started = now();
        await executions.start(workflow, input, { id });
        const record = await executions.waitForEnd(id, sampleTimeoutMs);
        if (record?.status !== "succeeded")
          throw new Error(`execution ${id} ended ${record?.status ?? "not at all"}`);
        if (i >= warmup) latencies.push(now() - started);
      }
      return summarize(latencies);
    },
  );
}

/** Nanoseconds per step of the code tracing runs when it is off. */
function offPathNanosPerStep(iterations: number): number {
  const compiled = compileWorkflow(validateWorkflowText(chainWorkflow("off-path", 2)).workflows[0]!);
  const applied = startExecution(compiled, "x", {
    type: "execution.start",
    workflow: "off-path",
    revision: 1,
    input: {},
    at: 0,
  });
  const task: TaskEnvelope = {
    v: protocolVersion,
    execution: "x",
    workflow: "off-path",
    step: "step-1",
    run: 1,
    attempt: 1,
    function: "noop",
    input: {},
    effect: false,
    deadline: 0,
    reply: subjects.result("x", 16),
  };
  const carrier = natsHeaders();
  carrier.set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  const once = () => {
    endTaskSpan(startTaskSpan(task, "noop", "w", carrier), { ok: true });
    exportPlannedSpans(
      traceTransition(compiled, applied.record, undefined, applied.commands, applied.history),
    );
  };
  for (let i = 0; i < 10_000; i++) once(); // warm-up: let the JIT settle
  const started = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) once();
  return Number(process.hrtime.bigint() - started) / iterations;
}

export const tracing: Scenario = {
  name: "tracing",
  summary: "chain-10 with OpenTelemetry off and on (OTLP to a local sink), and the off path's cost per step",
  async run({ options, log }) {
    const off = await timeChains(options, {}, "off", log);
    const sink = await startSink();
    let on: Summary;
    try {
      on = await timeChains(
        options,
        { OTEL_EXPORTER_OTLP_ENDPOINT: sink.endpoint, OTEL_BSP_SCHEDULE_DELAY: "1000" },
        "on",
        log,
      );
    } finally {
      await sink.close();
    }
    const nanos = offPathNanosPerStep(sized(options, 1_000_000, 100_000));
    const delta = (q: keyof Pick<Summary, "p50" | "p90" | "p99">) => on[q] - off[q];
    const rows: Row[] = [
      {
        scenario: "tracing.off",
        latency: off,
        target: "(baseline)",
        met: "n/a",
        notes: ["chain-10 through `baton engine` and `baton worker`, no OTEL_* set: nothing is started"],
      },
      {
        scenario: "tracing.on",
        latency: on,
        result: `p50 ${delta("p50") >= 0 ? "+" : ""}${delta("p50").toFixed(2)} ms vs off`,
        target: "(what it costs)",
        met: "n/a",
        notes: [
          `the same, exporting to an OTLP/HTTP (protobuf) sink here: ${sink.exports()} exports, ` +
            `${(sink.bytes() / 1024).toFixed(0)} KiB; batches every second (OTEL_BSP_SCHEDULE_DELAY=1000)`,
        ],
        data: {
          deltaP50Ms: delta("p50"),
          deltaP99Ms: delta("p99"),
          exports: sink.exports(),
          bytes: sink.bytes(),
        },
      },
      {
        scenario: "tracing.off (per step)",
        result: `${nanos.toFixed(0)} ns of CPU per step`,
        target: "nothing measurable",
        // A step costs milliseconds end to end (see overhead): a microsecond would be a thousandth of it.
        met: nanos < 1_000 ? "yes" : "no",
        notes: [
          "the worker's span start/end on the no-op API, the orchestrator's untraced span plan and export, " +
            "timed in-process over many iterations",
        ],
        data: { nanosPerStep: nanos },
      },
    ];
    return rows;
  },
};
