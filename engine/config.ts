/**
 * Every environment variable the engine reads, validated once at start: a bad value stops the
 * engine with a message that names the variable and what it accepts.
 */
import { parseDuration } from "./workflow/duration.ts";

export interface EngineConfig {
  /** NATS servers, comma-separated (`NATS_URL`). */
  natsUrl: string;
  /** This engine replica's name in logs and history (`BATON_ENGINE_ID`, default: host and pid). */
  engineId: string;
  /** How long finished executions and their history are kept (`BATON_RETENTION`, default 7d). */
  retentionMs: number;
  /** Backward jumps an execution may take (`BATON_MAX_BACKWARD_JUMPS`, default 10000). */
  maxBackwardJumps: number;
  /** Executions whose snapshots stay cached in memory (`BATON_CACHE_SIZE`, default 10000). */
  cacheSize: number;
}

export class ConfigError extends Error {
  override name = "ConfigError";
}

export function loadEngineConfig(env: NodeJS.ProcessEnv = process.env): EngineConfig {
  return {
    natsUrl: env.NATS_URL ?? "nats://127.0.0.1:4222",
    engineId: env.BATON_ENGINE_ID ?? `engine-${process.pid}`,
    retentionMs: durationVar(env, "BATON_RETENTION", "7d"),
    maxBackwardJumps: integerVar(env, "BATON_MAX_BACKWARD_JUMPS", 10_000),
    cacheSize: integerVar(env, "BATON_CACHE_SIZE", 10_000),
  };
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

function integerVar(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const text = env[name];
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1)
    throw new ConfigError(`${name}="${text}" must be a whole number of at least 1`);
  return value;
}
