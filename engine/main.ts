/**
 * Running the engine in a process: connect to NATS, make sure the streams and buckets exist,
 * and run the orchestrator until stopped. `baton engine` calls this; so can an embedding program.
 */
import { connect, type NatsConnection } from "nats";
import type { EngineConfig } from "./config.ts";
import { consoleLogger, Orchestrator, type Logger } from "./orchestrator/orchestrator.ts";

export interface RunningEngine {
  nc: NatsConnection;
  orchestrator: Orchestrator;
  /** Stops taking work, lets the batches under way finish, closes the connection. */
  stop(): Promise<void>;
}

export async function startEngine(config: EngineConfig, log: Logger = consoleLogger): Promise<RunningEngine> {
  const nc = await connect({
    servers: config.natsUrl.split(","),
    name: config.engineId,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    // Async stack traces cost two Error objects per request: over a tenth of the engine's CPU.
    noAsyncTraces: true,
  });
  const orchestrator = await Orchestrator.create(nc, config, log);
  await orchestrator.start();
  log.info("engine ready", { engine: config.engineId, nats: config.natsUrl });
  return {
    nc,
    orchestrator,
    stop: async () => {
      await orchestrator.stop();
      await nc.drain();
    },
  };
}
