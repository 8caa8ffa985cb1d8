// What a function is: a name, an optional input schema, the lane(s) it serves, and a handler
// that runs in an isolate. `defineFunction` also records the module that defines it, since the
// isolate imports that module and finds the function again by name.
import type { Lane } from "../protocol.ts";
import type { Logger } from "./logger.ts";
import { callerModuleUrl, toModuleUrl } from "./module-url.ts";

/** A JSON Schema (draft 2020-12), checked against a task's input before the handler runs. */
export type JsonSchema = boolean | Readonly<Record<string, unknown>>;

/** What a handler knows about the attempt it serves. */
export interface FunctionContext {
  /** The execution this attempt belongs to. */
  readonly executionId: string;
  /** The workflow's name. */
  readonly workflow: string;
  /** The step's name. */
  readonly step: string;
  /** Execution-wide number of this step run; `run` and `attempt` identify the attempt. */
  readonly run: number;
  /** From 1. */
  readonly attempt: number;
  /** Effect steps only: stable across attempts and restarts; use it to make the effect happen once. */
  readonly idempotencyKey: string | undefined;
  /** Whether the attempt came in on the effect lane. */
  readonly effect: boolean;
  /** The name the function is served under. */
  readonly function: string;
  /** The id of the worker running the attempt. */
  readonly worker: string;
  /** Aborted when the execution is cancelled or the deadline passes; stop soon after it fires. */
  readonly signal: AbortSignal;
  /** Epoch milliseconds by which the attempt must be done. */
  readonly deadline: number;
  /** Log lines carry the attempt's identity. */
  readonly logger: Logger;
  /**
   * Reports how far the attempt has got: `fraction` from 0 to 1 (clamped), and a short message.
   * Live on the execution's event websocket (`AttemptProgress`) and in its view; never stored,
   * and coalesced to a few reports per second, so call it as often as is convenient.
   */
  progress(fraction: number, message?: string): void;
}

/** The options of `defineFunction`. */
export interface FunctionOptions<I, O> {
  /** The name workflows `call`: `^[a-z][a-z0-9._-]{0,127}$`. */
  readonly name: string;
  /** JSON Schema of the input; a task whose input fails it is answered `InputInvalid` without running the handler. */
  readonly input?: JsonSchema;
  /**
   * Which lane the function serves. Omitted (the default): both, since the workflow decides
   * whether a `call` is an effect; `true`: only effect steps; `false`: only pure steps.
   */
  readonly effect?: boolean;
  /** Longest run of one attempt, in milliseconds or as a duration (`"30s"`); the task's own deadline applies too. */
  readonly timeout?: number | string;
  /**
   * The URL of the module that calls `defineFunction` (`import.meta.url`). Default: read from the
   * call stack. Give it when the function is defined through a helper in another module.
   */
  readonly module?: string | URL;
  /** Runs one attempt, in an isolate: returns the output (JSON) or throws (`BatonError` for a coded error). */
  handler(input: I, ctx: FunctionContext): O | Promise<O>;
}

const definitionBrand = Symbol.for("baton.function");

/** A function ready to be served (what `defineFunction` returns). */
export interface FunctionDefinition<I = unknown, O = unknown> {
  readonly name: string;
  readonly input: JsonSchema | undefined;
  /** The lanes the function serves. */
  readonly lanes: readonly Lane[];
  readonly timeoutMs: number | undefined;
  /** The defining module's URL, or `undefined` when it could not be told (then `serve` refuses the function). */
  readonly module: string | undefined;
  handler(input: I, ctx: FunctionContext): O | Promise<O>;
  readonly [definitionBrand]: true;
}

const namePattern = /^[a-z][a-z0-9._-]{0,127}$/;

/**
 * Defines a function that a worker serves. Call it at the top level of an ES module: the handler
 * runs in an isolate that imports the module again and finds the function by its name.
 *
 * @param options - `name`, `handler`, and optionally `input` (JSON Schema), `effect` (lane:
 *   default both), `timeout` and `module`
 * @returns the definition, to pass to `serve` or to export for `baton worker`
 *
 * @example
 * ```ts
 * export const thumbnail = defineFunction({
 *   name: "thumbnail",
 *   input: { type: "object", required: ["image"], properties: { image: { type: "string" } } },
 *   async handler(input: { image: string }, ctx) {
 *     ctx.logger.info("resizing", { image: input.image });
 *     return { url: await resize(input.image, { signal: ctx.signal }) };
 *   },
 * });
 * ```
 */
export function defineFunction<I = unknown, O = unknown>(
  options: FunctionOptions<I, O>,
): FunctionDefinition<I, O> {
  if (typeof options.name !== "string" || !namePattern.test(options.name)) {
    throw new TypeError(
      `defineFunction: invalid name ${JSON.stringify(options.name)}; a function name matches ^[a-z][a-z0-9._-]{0,127}$ (lower case, digits, ".", "_", "-")`,
    );
  }
  if (typeof options.handler !== "function") {
    throw new TypeError(`defineFunction("${options.name}"): handler must be a function`);
  }
  const module =
    options.module === undefined
      ? callerModuleUrl(defineFunction)
      : toModuleUrl(options.module instanceof URL ? options.module.href : options.module);
  const definition: FunctionDefinition<I, O> = {
    name: options.name,
    input: options.input,
    lanes: options.effect === undefined ? ["pure", "effect"] : options.effect ? ["effect"] : ["pure"],
    timeoutMs: options.timeout === undefined ? undefined : parseTimeout(options.name, options.timeout),
    module,
    handler: options.handler.bind(options),
    [definitionBrand]: true,
  };
  definedFunctions().set(definition.name, definition);
  return definition;
}

/** Whether `value` is a function definition (also from another copy of the SDK). */
export function isFunctionDefinition(value: unknown): value is FunctionDefinition {
  return (
    typeof value === "object" &&
    value !== null &&
    (value as { [definitionBrand]?: unknown })[definitionBrand] === true
  );
}

/**
 * The functions defined so far in this thread, by name (the last definition of a name wins). Kept
 * on `globalThis` so that two copies of the SDK in one isolate see the same functions.
 */
export function definedFunctions(): Map<string, FunctionDefinition> {
  const holder = globalThis as { [registryKey]?: Map<string, FunctionDefinition> };
  holder[registryKey] ??= new Map();
  return holder[registryKey];
}
const registryKey = Symbol.for("baton.functions");

const durationUnits = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

function parseTimeout(name: string, timeout: number | string): number {
  if (typeof timeout === "number") {
    if (Number.isFinite(timeout) && timeout > 0) return timeout;
  } else {
    const match = /^(\d+)(ms|s|m|h|d)$/.exec(timeout);
    const amount = Number(match?.[1]);
    const unit = match?.[2] as keyof typeof durationUnits | undefined;
    if (unit !== undefined && amount > 0) return amount * durationUnits[unit];
  }
  throw new TypeError(
    `defineFunction("${name}"): invalid timeout ${JSON.stringify(timeout)}; give milliseconds (a positive number) or a duration such as "250ms", "30s", "5m"`,
  );
}
