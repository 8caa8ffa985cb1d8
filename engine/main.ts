/**
 * Running the engine in a process: connect to NATS, make sure the streams and buckets exist,
 * and run the orchestrator until stopped. `baton engine` calls this; so can an embedding program.
 */
import type { NatsConnection } from "nats";
import { connectNats } from "../sdk/nats-connect.ts";
import type { EngineConfig } from "./config.ts";
import { ensureTopology } from "./nats/topology.ts";
import { Executions } from "./orchestrator/executions.ts";
import { consoleLogger, Orchestrator, type Logger } from "./orchestrator/orchestrator.ts";
import { TriggerMatcher } from "./triggers/matcher.ts";
import { InfraService } from "./triggers/infra-service.ts";
import { QueueService } from "./triggers/queue-service.ts";
import { ScheduleService } from "./triggers/schedule-service.ts";

export interface RunningEngine {
  nc: NatsConnection;
  orchestrator: Orchestrator;
  /** Starts the executions trigger events ask for (BATON_TRIGGERS). */
  matcher: TriggerMatcher;
  /** Stops taking work, lets the batches under way finish, closes the connection. */
  stop(): Promise<void>;
}

export async function startEngine(config: EngineConfig, log: Logger = consoleLogger): Promise<RunningEngine> {
  const nc = await connectNats(
    {
      servers: config.natsUrl.split(","),
      name: config.engineId,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      // Async stack traces cost two Error objects per request: over a tenth of the engine's CPU.
      noAsyncTraces: true,
    },
    config.natsAccess,
  );
  const orchestrator = await Orchestrator.create(nc, config, log);
  await orchestrator.start();
  const matcher = await TriggerMatcher.start(await Executions.connect(nc), log);
  // Trigger sources: they only publish TriggerEvents, which the matcher turns into executions.
  const { js, jsm, workflows } = await ensureTopology(nc);
  const schedules = await ScheduleService.start({ js, workflows, log });
  const queues = await QueueService.start({ js, jsm, workflows, log });
  const infra = await InfraService.start({ nc, js, log, silenceMs: config.nodeSilenceMs });
  log.info("engine ready", { engine: config.engineId, nats: config.natsUrl });
  return {
    nc,
    orchestrator,
    matcher,
    stop: async () => {
      await Promise.all([schedules.stop(), queues.stop(), infra.stop()]);
      await matcher.stop();
      await orchestrator.stop();
      await nc.drain();
    },
  };
}
