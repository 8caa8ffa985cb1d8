/**
 * Putting the API on a port: connect to NATS, build the server, listen on `BATON_LISTEN`.
 * Without a token the API takes every request, so it listens on loopback only: it says so at
 * start, and refuses any other address.
 */
import type { AddressInfo } from "node:net";
import { natsAccessFromEnv, type NatsAccess } from "../../sdk/nats-access.ts";
import { connectNats } from "../../sdk/nats-connect.ts";
import type { FastifyInstance } from "fastify";
import { ConfigError, type ApiConfig } from "../config.ts";
import { Executions } from "../orchestrator/executions.ts";
import { consoleLogger, type Logger } from "../orchestrator/orchestrator.ts";
import { isLoopback } from "./auth.ts";
import { buildServer } from "./server.ts";

export interface StartApiOptions {
  config: ApiConfig;
  /** NATS servers, comma-separated. */
  natsUrl: string;
  /** Credentials and TLS for NATS; default: from the environment (`NATS_CREDS`, `NATS_USER`...). */
  natsAccess?: NatsAccess;
  /** `BATON_PARTITIONS`, when set (engine/nats/partitions.ts). */
  partitions?: number;
  log?: Logger;
}

export interface RunningApi {
  /** `http://host:port`, with the port actually bound (`BATON_LISTEN` may ask for port 0). */
  url: string;
  app: FastifyInstance;
  /** Stops listening (long polls answer, event streams close with 1001) and closes the NATS connection. */
  close(): Promise<void>;
}

/** Refuses to serve without a token on an address other machines can reach. */
export function checkListenAddress(config: Pick<ApiConfig, "listen" | "tokens">): void {
  const { host, port } = config.listen;
  if (config.tokens.length === 0 && !isLoopback(host))
    throw new ConfigError(
      `refusing to listen on ${host}:${port} without a token: set BATON_API_TOKENS (comma-separated, at least 16 characters each), or listen on loopback (BATON_LISTEN=127.0.0.1:${port})`,
    );
}

export async function startApi({
  config,
  natsUrl,
  natsAccess = natsAccessFromEnv(),
  partitions,
  log = consoleLogger,
}: StartApiOptions): Promise<RunningApi> {
  checkListenAddress(config);
  const nc = await connectNats(
    {
      servers: natsUrl.split(","),
      name: "baton-api",
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
    },
    natsAccess,
  );
  let app: FastifyInstance;
  try {
    const executions = await Executions.connect(nc, {
      idempotencyTtlMs: config.idempotencyTtlMs,
      ...(partitions === undefined ? {} : { partitions }),
    });
    app = await buildServer({
      executions,
      config,
      logger: { level: "warn" },
      processMetrics: true,
    });
    app.addHook("onClose", async () => {
      await nc.drain();
    });
    await app.listen({ host: config.listen.host, port: config.listen.port });
  } catch (error) {
    await nc.close();
    throw error;
  }
  const address = app.server.address() as AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}`;
  if (config.tokens.length === 0)
    log.warn(
      "no API token configured (BATON_API_TOKENS): the API accepts every request, so it listens on loopback only",
      {
        url,
      },
    );
  log.info("api listening", { url, tokens: config.tokens.length });
  return { url, app, close: () => app.close() };
}
