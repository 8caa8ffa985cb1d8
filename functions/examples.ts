// Small functions the example workflows and the system tests call. Serve them with
// `baton worker functions/examples.ts`.
import { appendFile, mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleepFor } from "node:timers/promises";
import { BatonError, defineFunction } from "../sdk/index.ts";

/** Returns its input. */
export const echo = defineFunction({
  name: "echo",
  handler: (input: unknown) => input,
});

/** `{ a, b }` → `a + b`. */
export const add = defineFunction({
  name: "add",
  input: {
    type: "object",
    required: ["a", "b"],
    properties: { a: { type: "number" }, b: { type: "number" } },
  },
  handler: (input: { a: number; b: number }) => input.a + input.b,
});

/** Fails with the error its input describes: `{ code, message?, retryable?, details? }`. */
export const failWith = defineFunction({
  name: "fail-with",
  input: {
    type: "object",
    required: ["code"],
    properties: {
      code: { type: "string", minLength: 1 },
      message: { type: "string" },
      retryable: { type: "boolean" },
    },
  },
  handler: (input: { code: string; message?: string; retryable?: boolean; details?: unknown }) => {
    throw new BatonError(input.code, input.message ?? `failed with ${input.code} as asked`, {
      retryable: input.retryable ?? false,
      details: input.details,
    });
  },
});

/**
 * Fails its first `failures` attempts (default 1) with a retryable `Flaky` error, then returns
 * `{ ...input, attempt }`: a step that succeeds on a retry.
 */
export const flaky = defineFunction({
  name: "flaky",
  input: { type: "object", properties: { failures: { type: "integer", minimum: 0 } } },
  handler: (input: { failures?: number }, ctx) => {
    const failures = input.failures ?? 1;
    if (ctx.attempt <= failures)
      throw new BatonError("Flaky", `attempt ${ctx.attempt} of ${failures + 1} fails on purpose`, {
        retryable: true,
      });
    return { ...input, attempt: ctx.attempt };
  },
});

/** Waits `{ ms }` milliseconds (stopping early when cancelled) and returns `{ sleptMs }`. */
export const sleep = defineFunction({
  name: "sleep",
  input: { type: "object", required: ["ms"], properties: { ms: { type: "number", minimum: 0 } } },
  async handler(input: { ms: number }, ctx) {
    const started = Date.now();
    await sleepFor(input.ms, undefined, { signal: ctx.signal });
    return { sleptMs: Date.now() - started };
  },
});

/**
 * An effect that can be counted: appends one line per run to a file named after the attempt's
 * idempotency key in `BATON_EFFECT_DIR`, and returns how many runs that key has had. System tests
 * read the files to prove an effect step ran once.
 */
export const effectCounter = defineFunction({
  name: "effect-counter",
  effect: true,
  async handler(input: unknown, ctx) {
    const dir = process.env.BATON_EFFECT_DIR;
    if (dir === undefined || dir === "") {
      throw new BatonError(
        "EffectDirMissing",
        "set BATON_EFFECT_DIR to the directory where effect-counter writes",
      );
    }
    if (ctx.idempotencyKey === undefined) {
      throw new BatonError(
        "IdempotencyKeyMissing",
        "effect-counter runs only as an effect step (effect: true)",
      );
    }
    await mkdir(dir, { recursive: true });
    const file = join(dir, encodeURIComponent(ctx.idempotencyKey));
    const line = JSON.stringify({ execution: ctx.executionId, step: ctx.step, attempt: ctx.attempt, input });
    await appendFile(file, `${line}\n`);
    const count = (await readFile(file, "utf8")).split("\n").filter((l) => l !== "").length;
    return { idempotencyKey: ctx.idempotencyKey, count };
  },
});

/** Ends its isolate with `process.exit(1)`: the attempt fails with `WorkerCrashed`. */
export const crash = defineFunction({
  name: "crash",
  handler: () => process.exit(1),
});

/** Loops forever without yielding: the attempt fails with `Timeout` and its isolate is terminated. */
export const spin = defineFunction({
  name: "spin",
  handler: () => {
    for (;;) {
      // Deliberately endless.
    }
  },
});

/** Allocates until the isolate runs out of heap: the attempt fails with `WorkerCrashed` (out of memory). */
export const hog = defineFunction({
  name: "hog",
  handler: () => {
    const hoard: number[][] = [];
    for (;;) hoard.push(Array.from({ length: 100_000 }, (_, i) => i + hoard.length));
  },
});
