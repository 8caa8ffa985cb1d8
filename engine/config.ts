/**
 * Every environment variable the engine reads, validated once at start: a bad value stops the
 * engine with a message that names the variable and what it accepts.
 */
import { NatsAccessError, natsAccessFromEnv, type NatsAccess } from "../sdk/nats-access.ts";
import { natsReplicas, ReplicationError } from "../sdk/replication.ts";
import { parseDuration } from "./workflow/duration.ts";

export interface EngineConfig {
  /** NATS servers, comma-separated (`NATS_URL`). */
  natsUrl: string;
  /**
   * Credentials and TLS for NATS (`NATS_CREDS`, `NATS_USER`/`NATS_PASSWORD`, `NATS_TOKEN`,
   * `NATS_NKEY`, `NATS_CA`, `NATS_CERT`/`NATS_KEY`), checked at load.
   */
  natsAccess: NatsAccess;
  /** This engine replica's name in logs and history (`BATON_ENGINE_ID`, default: host and pid). */
  engineId: string;
  /** How long finished executions and their history are kept (`BATON_RETENTION`, default 7d). */
  retentionMs: number;
  /** Backward jumps an execution may take (`BATON_MAX_BACKWARD_JUMPS`, default 10000). */
  maxBackwardJumps: number;
  /** Executions whose snapshots stay cached in memory (`BATON_CACHE_SIZE`, default 10000). */
  cacheSize: number;
  /** How long a node's workers may be silent before it has left (`BATON_NODE_SILENCE`, default 10s). */
  nodeSilenceMs: number;
  /**
   * Copies NATS keeps of every stream, bucket and durable consumer Baton creates
   * (`BATON_NATS_REPLICAS`, 1 to 5). Unset: what is missing is created with one, and what
   * exists is left as it is; sdk/replication.ts.
   */
  natsReplicas?: number;
  /**
   * The timer index's slot length (engine/orchestrator/timer-index.ts): a minute. Tests shorten
   * it with `BATON_TEST_TIMER_SLOT_MS`; never set it in production (every engine must agree, and
   * slots of another length are not found).
   */
  timerSlotMs?: number;
  /**
   * How many partitions executions are shared in (`BATON_PARTITIONS`, 1 to 1024). Read only when a
   * deployment first starts; unset afterwards means "as stored" (engine/nats/partitions.ts).
   */
  partitions?: number;
}

/** The timer index's slot length in production: a minute (engine/orchestrator/timer-index.ts). */
export const defaultTimerSlotMs = 60_000;

export class ConfigError extends Error {
  override name = "ConfigError";
}

export function loadEngineConfig(env: NodeJS.ProcessEnv = process.env): EngineConfig {
  return {
    natsUrl: env.NATS_URL ?? "nats://127.0.0.1:4222",
    natsAccess: natsAccessVar(env),
    engineId: env.BATON_ENGINE_ID ?? `engine-${process.pid}`,
    retentionMs: durationVar(env, "BATON_RETENTION", "7d"),
    maxBackwardJumps: integerVar(env, "BATON_MAX_BACKWARD_JUMPS", 10_000),
    cacheSize: integerVar(env, "BATON_CACHE_SIZE", 10_000),
    nodeSilenceMs: durationVar(env, "BATON_NODE_SILENCE", "10s"),
    natsReplicas: replicasVar(env),
    ...(env.BATON_PARTITIONS === undefined ? {} : { partitions: partitionsVar(env) }),
    ...(env.BATON_TEST_TIMER_SLOT_MS === undefined
      ? {}
      : { timerSlotMs: integerVar(env, "BATON_TEST_TIMER_SLOT_MS", defaultTimerSlotMs) }),
  };
}

/** The NATS credential and TLS variables, a mistake in them reported as any other bad variable. */
export function natsAccessVar(env: NodeJS.ProcessEnv): NatsAccess {
  try {
    return natsAccessFromEnv(env);
  } catch (error) {
    if (error instanceof NatsAccessError) throw new ConfigError(error.message);
    throw error;
  }
}

/** The HTTP API's settings (`startApi`); see docs/api.md. */
export interface ApiConfig {
  /** Where the API listens (`BATON_LISTEN`, default `127.0.0.1:8080`; port 0 picks a free one). */
  listen: { host: string; port: number };
  /**
   * Bearer tokens that may call the API (`BATON_API_TOKENS`, comma-separated, at least 16
   * characters each). None: every request is accepted, and the API listens on loopback only.
   */
  tokens: string[];
  /** Largest request body, in bytes (`BATON_API_BODY_LIMIT`, default 1MiB). */
  bodyLimit: number;
  /** Largest workflow document, in bytes (`BATON_API_WORKFLOW_LIMIT`, default 256KiB). */
  workflowLimit: number;
  /** Largest execution input or signal payload, in bytes (`BATON_API_INPUT_LIMIT`, default 512KiB). */
  inputLimit: number;
  /** Largest function package (bundle) `PUT /v1/functions/{name}` takes, in bytes (`BATON_API_PACKAGE_LIMIT`, default 16MiB). */
  packageLimit: number;
  /** Longest `?wait=` a request may ask for; longer ones are cut to it (`BATON_API_MAX_WAIT`, default 5m). */
  maxWaitMs: number;
  /** How long an `Idempotency-Key` is remembered (`BATON_API_IDEMPOTENCY_TTL`, default 24h). */
  idempotencyTtlMs: number;
  /**
   * Secrets GitHub webhooks are signed with (`BATON_GITHUB_SECRET`, comma-separated: several while
   * one is rotated). None: `POST /v1/hooks/github` refuses every delivery.
   */
  githubSecrets: string[];
  /** How long the execution access tokens in `links` stay valid (`BATON_API_ACCESS_TTL`, default 24h). */
  accessTtlMs: number;
  /**
   * The key access tokens are signed with (`BATON_API_SIGNING_KEY`, at least 32 characters).
   * Unset: a key created once and kept in JetStream (KV `baton_api`), shared by every replica.
   */
  signingKey?: string;
  /** Origins browsers may call the API from (`BATON_API_CORS_ORIGINS`, exact, comma-separated); none by default. */
  corsOrigins: string[];
  /** The console's link to an execution's trace (`BATON_UI_TRACE_URL`, `{traceId}` replaced). */
  uiTraceUrl?: string;
}

/** The shortest signing key accepted (HS256 wants 256 bits). */
export const minSigningKeyLength = 32;

/** The shortest bearer token accepted: shorter ones are too easy to guess. */
export const minTokenLength = 16;

export function loadApiConfig(env: NodeJS.ProcessEnv = process.env): ApiConfig {
  const tokens = (env.BATON_API_TOKENS ?? "")
    .split(",")
    .map((token) => token.trim())
    .filter((token) => token !== "");
  for (const [index, token] of tokens.entries()) {
    if (token.length < minTokenLength)
      throw new ConfigError(
        `BATON_API_TOKENS: token ${index + 1} is ${token.length} characters long; use at least ${minTokenLength} (e.g. openssl rand -hex 32)`,
      );
  }
  return {
    listen: listenVar(env, "BATON_LISTEN", "127.0.0.1:8080"),
    tokens,
    bodyLimit: sizeVar(env, "BATON_API_BODY_LIMIT", "1MiB"),
    workflowLimit: sizeVar(env, "BATON_API_WORKFLOW_LIMIT", "256KiB"),
    inputLimit: sizeVar(env, "BATON_API_INPUT_LIMIT", "512KiB"),
    packageLimit: sizeVar(env, "BATON_API_PACKAGE_LIMIT", "16MiB"),
    maxWaitMs: durationVar(env, "BATON_API_MAX_WAIT", "5m"),
    idempotencyTtlMs: durationVar(env, "BATON_API_IDEMPOTENCY_TTL", "24h"),
    githubSecrets: (env.BATON_GITHUB_SECRET ?? "")
      .split(",")
      .map((secret) => secret.trim())
      .filter((secret) => secret !== ""),
    accessTtlMs: durationVar(env, "BATON_API_ACCESS_TTL", "24h"),
    ...signingKeyVar(env),
    corsOrigins: corsOriginsVar(env),
    ...(env.BATON_UI_TRACE_URL ? { uiTraceUrl: env.BATON_UI_TRACE_URL } : {}),
  };
}

function signingKeyVar(env: NodeJS.ProcessEnv): { signingKey?: string } {
  const key = env.BATON_API_SIGNING_KEY?.trim();
  if (!key) return {};
  if (key.length < minSigningKeyLength)
    throw new ConfigError(
      `BATON_API_SIGNING_KEY is ${key.length} characters long; use at least ${minSigningKeyLength} (e.g. openssl rand -hex 32)`,
    );
  return { signingKey: key };
}

/** Exact origins (`scheme://host[:port]`, no path): anything else is a mistake worth stopping for. */
function corsOriginsVar(env: NodeJS.ProcessEnv): string[] {
  const origins = (env.BATON_API_CORS_ORIGINS ?? "")
    .split(",")
    .map((origin) => origin.trim())
    .filter((origin) => origin !== "");
  for (const origin of origins) {
    let parsed: URL | undefined;
    try {
      parsed = new URL(origin);
    } catch {
      parsed = undefined;
    }
    if (!parsed || !/^https?:$/.test(parsed.protocol) || parsed.origin !== origin)
      throw new ConfigError(
        `BATON_API_CORS_ORIGINS: "${origin}" is not an origin; write scheme://host[:port] exactly as browsers send it (https://app.example.com, http://localhost:5173)`,
      );
  }
  return origins;
}

const sizeUnits = { B: 1, KiB: 1024, MiB: 1024 * 1024 } as const;

function sizeVar(env: NodeJS.ProcessEnv, name: string, fallback: string): number {
  const text = env[name] ?? fallback;
  const match = /^(\d+)\s*(B|KiB|MiB)?$/.exec(text.trim());
  const bytes = match ? Number(match[1]) * sizeUnits[(match[2] ?? "B") as keyof typeof sizeUnits] : NaN;
  if (!Number.isSafeInteger(bytes) || bytes < 1)
    throw new ConfigError(
      `${name}="${text}" is not a size: write a number of bytes, or one with KiB or MiB (512KiB)`,
    );
  return bytes;
}

function listenVar(env: NodeJS.ProcessEnv, name: string, fallback: string): { host: string; port: number } {
  const text = (env[name] ?? fallback).trim();
  // `host:port`, `[v6]:port`, or `:port` (every interface).
  const match = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text);
  const port = Number(match?.[3]);
  if (!match || port > 65_535)
    throw new ConfigError(
      `${name}="${text}" is not an address: write host:port (127.0.0.1:8080, [::1]:8080, :8080)`,
    );
  const host = match[1] ?? match[2] ?? "";
  return { host: host === "" ? "0.0.0.0" : host, port };
}

function replicasVar(env: NodeJS.ProcessEnv): number | undefined {
  try {
    return natsReplicas(env);
  } catch (error) {
    if (error instanceof ReplicationError) throw new ConfigError(error.message);
    throw error;
  }
}

function durationVar(env: NodeJS.ProcessEnv, name: string, fallback: string): number {
  const text = env[name] ?? fallback;
  const ms = parseDuration(text);
  if (ms === undefined)
    throw new ConfigError(
      `${name}="${text}" is not a duration: write a number with a unit (250ms, 5s, 10m, 2h, 7d)`,
    );
  return ms;
}

function partitionsVar(env: NodeJS.ProcessEnv): number {
  const value = integerVar(env, "BATON_PARTITIONS", 16);
  if (value > 1_024) throw new ConfigError(`BATON_PARTITIONS="${env.BATON_PARTITIONS}" must be at most 1024`);
  return value;
}

function integerVar(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const text = env[name];
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1)
    throw new ConfigError(`${name}="${text}" must be a whole number of at least 1`);
  return value;
}
