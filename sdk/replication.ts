/**
 * How many copies NATS keeps of what Baton stores: `BATON_NATS_REPLICAS` (1 to 5, default 1)
 * for every stream, KV bucket, object store and durable consumer Baton or its workers create.
 * Resources that exist already are brought to that count at start, when the variable is set (a
 * process without it creates what is missing with one replica and changes nothing that exists,
 * so a worker started without it cannot scale a cluster's streams down) (`streams.update` and
 * `consumers.update`: nats-server 2.9 changes a clustered stream's or consumer's replica count in
 * place); where the server refuses (a single server asked for more than one replica, a cluster
 * with fewer nodes than replicas), start fails with an error that names the resource and the
 * command that fixes it.
 *
 * KV buckets are also made to answer reads from their stream's leader only (`allow_direct: false`):
 * with direct gets, any replica answers a `get`, and a follower may not have the latest write
 * yet; an execution record, a workflow revision or an effect ledger entry read stale would
 * decide wrongly (docs/operations.md, "Running on a cluster").
 */
import type { ConsumerConfig, JetStreamClient, JetStreamManager, KV, KvOptions, StreamConfig } from "nats";
import { retryNats } from "./nats-retry.ts";

export const replicasVariable = "BATON_NATS_REPLICAS";
export const maxReplicas = 5;

/** A replica count that is not allowed, or a resource whose count cannot be brought to it. */
export class ReplicationError extends Error {
  override name = "ReplicationError";
}

/**
 * The replica count asked for in the environment, validated; `undefined` when unset (create with
 * one, leave what exists as it is).
 */
export function natsReplicas(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const text = env[replicasVariable]?.trim();
  if (text === undefined || text === "") return undefined;
  const value = Number(text);
  if (!/^\d+$/.test(text) || !Number.isInteger(value) || value < 1 || value > maxReplicas)
    throw new ReplicationError(
      `${replicasVariable}="${env[replicasVariable]}" must be a whole number from 1 to ${maxReplicas} (the copies NATS keeps of every stream and bucket; 3 on a 3-node cluster)`,
    );
  return value;
}

/** Settings a KV bucket Baton opens or creates always has (with `openBucket`). */
export function bucketSettings(replicas = natsReplicas()): Pick<KvOptions, "replicas" | "allow_direct"> {
  return { replicas: replicas ?? 1, allow_direct: false };
}

/**
 * Opens the KV bucket `bucket`, creating it with `options` when missing; either way it ends up
 * with the configured replica count and leader-only reads.
 */
export async function openBucket(
  js: JetStreamClient,
  bucket: string,
  options: Partial<KvOptions> = {},
  replicas = natsReplicas(),
): Promise<KV> {
  const jsm = await js.jetstreamManager();
  await reconcileStream(
    jsm,
    `KV_${bucket}`,
    { num_replicas: replicas, allow_direct: false },
    `KV bucket ${bucket}`,
  );
  try {
    return await retryNats(() => js.views.kv(bucket, { ...options, ...bucketSettings(replicas) }));
  } catch (error) {
    throw explainCreateError(error, `KV bucket ${bucket}`, replicas);
  }
}

/**
 * Brings an existing stream to `wanted` (a replica count, leader-only reads); does nothing when
 * it does not exist (its creator sets them) or already has them. Resolves with whether the stream
 * exists: one read serves the callers that create it when missing.
 */
export async function reconcileStream(
  jsm: JetStreamManager,
  name: string,
  wanted: { num_replicas: number | undefined; allow_direct?: boolean },
  what = `stream ${name}`,
): Promise<boolean> {
  let config: StreamConfig;
  let clustered: boolean;
  try {
    const info = await retryNats(() => jsm.streams.info(name));
    config = info.config;
    clustered = info.cluster !== undefined;
  } catch (error) {
    if (isStreamNotFound(error)) return false;
    throw error;
  }
  const replicasDiffer =
    wanted.num_replicas !== undefined && (config.num_replicas || 1) !== wanted.num_replicas;
  const directDiffers =
    wanted.allow_direct !== undefined && (config.allow_direct ?? false) !== wanted.allow_direct;
  if (!replicasDiffer && !directDiffers) return true;
  try {
    // nats-server 2.9 takes such an update on a single server, and keeps one copy: refuse it here.
    if ((wanted.num_replicas ?? 1) > 1 && !clustered)
      throw new Error("this is a single server, not a cluster: it keeps one copy whatever the stream says");
    const replicas = wanted.num_replicas ?? config.num_replicas;
    await retryNats(() => jsm.streams.update(name, { ...config, ...wanted, num_replicas: replicas }));
    if (replicasDiffer) await settled(jsm, name, replicas);
    return true;
  } catch (error) {
    const command = replicasDiffer
      ? `nats stream edit ${name} --replicas ${wanted.num_replicas}`
      : `nats stream edit ${name} --no-allow-direct`;
    throw new ReplicationError(
      `${what} has ${config.num_replicas || 1} replica(s)${replicasDiffer ? ` but ${replicasVariable} asks for ${wanted.num_replicas}` : " and allows direct (follower) reads"}, and nats-server refused to change it in place: ${reason(error)}. ` +
        `Change it with \`${command}\`${replicasDiffer ? `, or set ${replicasVariable}=${config.num_replicas || 1}` : ""}` +
        (replicasDiffer && (wanted.num_replicas ?? 1) > 1
          ? ` (more than one replica needs a NATS cluster of at least ${wanted.num_replicas} nodes)`
          : ""),
      { cause: error },
    );
  }
}

/**
 * Waits until a stream whose replica count changed has a leader and that many replicas, all
 * current: the requests that follow would otherwise meet it mid-move.
 */
async function settled(
  jsm: JetStreamManager,
  name: string,
  replicas: number,
  patienceMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + patienceMs;
  for (let delay = 50; ; delay = Math.min(delay * 2, 1_000)) {
    const { cluster } = await retryNats(() => jsm.streams.info(name));
    const followers = cluster?.replicas ?? [];
    if (cluster?.leader && followers.length === replicas - 1 && followers.every((peer) => peer.current))
      return;
    if (Date.now() > deadline)
      throw new Error(`stream ${name} did not settle on ${replicas} replicas within ${patienceMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
}

/**
 * Brings an existing durable consumer to `replicas`; does nothing when it is missing or has them.
 * `0` (the stream's count) counts as the stream's.
 */
export async function reconcileConsumer(
  jsm: JetStreamManager,
  stream: string,
  durable: string,
  replicas: number | undefined,
): Promise<void> {
  if (replicas === undefined) return;
  let config: ConsumerConfig;
  try {
    config = (await retryNats(() => jsm.consumers.info(stream, durable))).config;
  } catch (error) {
    if (isConsumerNotFound(error)) return;
    throw error;
  }
  if (config.num_replicas === replicas) return;
  try {
    await retryNats(() => jsm.consumers.update(stream, durable, { ...config, num_replicas: replicas }));
  } catch (error) {
    throw new ReplicationError(
      `consumer ${durable} of stream ${stream} has ${config.num_replicas || "the stream's"} replica(s) but ${replicasVariable} asks for ${replicas}, and nats-server refused to change it in place: ${reason(error)}. ` +
        `Change it with \`nats consumer edit ${stream} ${durable} --replicas ${replicas}\`, or remove it (\`nats consumer rm ${stream} ${durable}\`: Baton creates it again; messages not yet acknowledged stay in the stream)`,
      { cause: error },
    );
  }
}

/**
 * The error nats-server gives a single server asked for more than one replica, said plainly; other
 * errors pass through.
 */
export function explainCreateError(error: unknown, what: string, replicas = 1): unknown {
  const text = reason(error);
  if (replicas > 1 && /replicas|insufficient resources|no suitable peers/i.test(text))
    return new ReplicationError(
      `cannot create ${what} with ${replicas} replicas (${replicasVariable}=${replicas}): ${text}. ` +
        `More than one replica needs a NATS cluster of at least ${replicas} nodes with JetStream; set ${replicasVariable}=1 for a single server`,
      { cause: error },
    );
  return error;
}

function reason(error: unknown): string {
  const apiError = (error as { api_error?: { description?: string } } | undefined)?.api_error;
  return apiError?.description ?? (error instanceof Error ? error.message : String(error));
}

function errorCode(error: unknown): number | undefined {
  return (error as { api_error?: { err_code?: number } } | undefined)?.api_error?.err_code;
}

/** JetStream's "stream not found" (10059). */
export function isStreamNotFound(error: unknown): boolean {
  return errorCode(error) === 10059 || (error instanceof Error && error.message === "stream not found");
}

/** JetStream's "consumer not found" (10014). */
export function isConsumerNotFound(error: unknown): boolean {
  return errorCode(error) === 10014 || (error instanceof Error && error.message === "consumer not found");
}
