/** `baton engine`: run the engine alone (production), until SIGTERM or SIGINT. */
import { once } from "node:events";
import { ConfigError, loadEngineConfig } from "../../config.ts";
import { startEngine } from "../../main.ts";
import { StartRefused } from "../../nats/partitions.ts";
import { startTracing, stopTracing } from "../../telemetry/tracing.ts";
import { exitCodes, UsageError, type Command } from "../command.ts";

export const engineCommand: Command = {
  name: "engine",
  summary: "run the engine (orchestrator) against NATS_URL until stopped",
  usage: `Usage: baton engine

Runs the orchestrator: it applies events to executions, arms timers and dispatches tasks to
workers, all through NATS JetStream at NATS_URL. Run as many as you like: they share the work.
SIGTERM or SIGINT stops it after the work under way is done.

Environment: NATS_URL, BATON_ENGINE_ID, BATON_RETENTION, BATON_MAX_BACKWARD_JUMPS, BATON_CACHE_SIZE,
BATON_NATS_REPLICAS, BATON_PARTITIONS; NATS credentials and TLS with NATS_CREDS, NATS_USER/NATS_PASSWORD, NATS_TOKEN
or NATS_NKEY, and NATS_CA, NATS_CERT/NATS_KEY (docs/operations.md);
OpenTelemetry tracing with the standard OTEL_* variables (on when OTEL_EXPORTER_OTLP_ENDPOINT is set).
`,
  async run(args, io) {
    if (args.length > 0) throw new UsageError(`takes no arguments, got "${args.join(" ")}"`);
    let config;
    try {
      config = loadEngineConfig();
    } catch (error) {
      if (error instanceof ConfigError) {
        io.stderr(`baton engine: ${error.message}\n`);
        return exitCodes.usage;
      }
      throw error;
    }
    startTracing("baton-engine");
    let engine;
    try {
      engine = await startEngine(config);
    } catch (error) {
      if (error instanceof StartRefused) {
        io.stderr(`baton engine: ${error.message}\n`);
        return exitCodes.usage;
      }
      throw error;
    }
    const signal = await Promise.race([once(process, "SIGTERM"), once(process, "SIGINT")]);
    io.stderr(`baton engine: ${String(signal[0] ?? "signal")} received, finishing the work under way\n`);
    await engine.stop();
    await stopTracing();
    return exitCodes.ok;
  },
};
