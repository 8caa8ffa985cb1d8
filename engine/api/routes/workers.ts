/**
 * `GET /v1/workers`: the live workers and the functions each serves, read from the workers KV
 * bucket (`baton_workers`), whose entries the workers' heartbeats write and which expire on
 * silence; a worker that stops cleanly removes its own entry.
 */
import { listKeys } from "../../nats/kv-keys.ts";
import type { FastifyPluginCallback } from "fastify";
import type { KV } from "nats";
import type { HeartbeatEnvelope } from "../../../sdk/protocol.ts";
import { openWorkersBucket } from "../../nats/topology.ts";
import type { ApiContext } from "../context.ts";
import { problemResponses } from "../schemas.ts";

const workerSchema = {
  type: "object",
  required: ["worker", "node", "functions", "running", "startedAt", "seenAt"],
  properties: {
    worker: { type: "string" },
    node: { type: "string" },
    functions: {
      type: "array",
      items: {
        type: "object",
        required: ["name", "lane"],
        properties: { name: { type: "string" }, lane: { type: "string", enum: ["pure", "effect"] } },
      },
    },
    concurrency: { type: "integer" },
    effectConcurrency: { type: "integer" },
    running: { type: "integer" },
    startedAt: { type: "string", format: "date-time" },
    seenAt: { type: "string", format: "date-time", description: "When its last heartbeat was recorded." },
  },
} as const;

export function workerRoutes({ executions }: ApiContext): FastifyPluginCallback {
  let bucket: Promise<KV> | undefined;
  /**
   * The engine's topology creates the bucket (and so do SDK workers); opened with the same
   * settings, it is created here too when missing, so no bucket never means a 500.
   */
  const workersBucket = () => {
    bucket ??= openWorkersBucket(executions.connection.jetstream()).catch((error: unknown) => {
      bucket = undefined;
      throw error;
    });
    return bucket;
  };

  return (app, _options, done) => {
    app.get(
      "/v1/workers",
      {
        schema: {
          tags: ["operations"],
          summary: "Live workers, by id, with the functions each serves",
          response: {
            200: {
              type: "object",
              required: ["items"],
              properties: { items: { type: "array", items: workerSchema } },
            },
            ...problemResponses(),
          },
        },
      },
      async () => {
        const kv = await workersBucket();
        const items = [];
        for (const key of await listKeys(kv)) {
          const entry = await kv.get(key);
          if (!entry || entry.operation !== "PUT") continue;
          const beat = entry.json<HeartbeatEnvelope>();
          items.push({
            worker: beat.worker,
            node: beat.node,
            functions: beat.functions,
            concurrency: beat.concurrency,
            effectConcurrency: beat.effectConcurrency,
            running: beat.running,
            startedAt: new Date(beat.startedAt).toISOString(),
            seenAt: entry.created.toISOString(),
          });
        }
        return { items: items.sort((a, b) => a.worker.localeCompare(b.worker)) };
      },
    );
    done();
  };
}
