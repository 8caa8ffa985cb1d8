// The worker process's settings from its environment, in a module of its own: `baton worker`
// reads BATON_WORKER_HEAP_MB to boot its first isolate before it loads the rest of the worker.
import { defaultIsolateHeapMb } from "./isolate-pool.ts";

/** `BATON_WORKER_HEAP_MB`, or the default heap of an isolate. Throws on a value that is not a positive whole number. */
export function isolateHeapMb(env: NodeJS.ProcessEnv): number {
  return numberFrom(env, "BATON_WORKER_HEAP_MB") ?? defaultIsolateHeapMb;
}

/** A positive whole number from `env[name]`; `undefined` when unset; throws, naming it, on anything else. */
export function numberFrom(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const text = env[name];
  if (text === undefined || text === "") return undefined;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value <= 0)
    throw new Error(`${name} must be a positive whole number, not "${text}"`);
  return value;
}
