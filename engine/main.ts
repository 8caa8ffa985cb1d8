/**
 * The engine process: `baton engine`. Connects to NATS, makes sure the streams and buckets
 * exist, and runs the orchestrator until SIGTERM or SIGINT, then stops taking work, lets the
 * batches under way finish, and exits.
 */
import { connect } from "nats";
import { loadEngineConfig } from "./config.ts";
import { consoleLogger, Orchestrator } from "./orchestrator/orchestrator.ts";

export async function runEngine(): Promise<void> {
  const config = loadEngineConfig();
  const nc = await connect({
    servers: config.natsUrl.split(","),
    name: config.engineId,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
  });
  const orchestrator = await Orchestrator.create(nc, config);
  await orchestrator.start();
  consoleLogger.info("engine ready", { engine: config.engineId, nats: config.natsUrl });

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    consoleLogger.info("engine stopping", { signal });
    await orchestrator.stop();
    await nc.drain();
    process.exit(0);
  };
  process.once("SIGTERM", () => void stop("SIGTERM"));
  process.once("SIGINT", () => void stop("SIGINT"));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  runEngine().catch((error: unknown) => {
    consoleLogger.error("engine failed to start", { error: String(error) });
    process.exit(1);
  });
}
