// Runs inside an isolate (a worker thread): imports the function modules, then runs one attempt
// at a time for the worker. Whatever a handler does here — throw, exit, loop, exhaust the heap —
// ends at most this thread; the worker sees it and answers for the attempt.
import { parentPort, workerData } from "node:worker_threads";
import { BatonError, toWireError } from "../errors.ts";
import { definedFunctions, type FunctionDefinition } from "./define-function.ts";
import type { FromIsolate, IsolateData, RunContext, ToIsolate } from "./isolate-messages.ts";
import type { LogFields, Logger, LogLevel } from "./logger.ts";

const port = parentPort;
if (port === null) throw new Error("isolate-runtime.ts runs only inside a worker thread");
const data = workerData as IsolateData;
const controllers = new Map<number, AbortController>();
const send = (message: FromIsolate): void => port.postMessage(message);

let loadModules: (modules: readonly string[]) => void = () => {};
const modules: Promise<readonly string[]> =
  data.modules !== undefined
    ? Promise.resolve(data.modules)
    : new Promise((resolve) => {
        loadModules = resolve;
      });

port.on("message", (message: ToIsolate) => {
  switch (message.type) {
    case "load":
      loadModules(message.modules);
      break;
    case "run":
      void run(message.id, message.module, message.fn, message.input, message.ctx);
      break;
    case "abort":
      controllers.get(message.id)?.abort(new BatonError(message.code, message.reason));
      break;
    default:
      message satisfies never;
  }
});

// Tells serve() it runs inside an isolate (a function module that serves itself is imported here too).
(globalThis as { [key: symbol]: unknown })[Symbol.for("baton.insideIsolate")] = true;

const loaded = new Set<string>();
const failures: { module: string; message: string }[] = [];
// Booted before its modules were known (and so without tsx's hooks unless the runtime itself is
// TypeScript): a TypeScript module registers them first, once.
const toImport = await modules;
const isTypeScript = (url: string): boolean => /\.[cm]?tsx?$/.test(url);
if (!data.tsxRegistered && toImport.some(isTypeScript)) {
  try {
    ((await import(data.tsxApiUrl)) as { register: () => void }).register();
  } catch (error) {
    failures.push({
      module: toImport.find(isTypeScript)!,
      message: `TypeScript modules need tsx, which could not be loaded: ${error instanceof Error ? error.message : String(error)}`,
    });
  }
}
for (const module of toImport) {
  try {
    await importModule(module);
  } catch (error) {
    failures.push({ module, message: error instanceof Error ? error.message : String(error) });
  }
}
send({ type: "ready", functions: [...definedFunctions().keys()], failures });

async function importModule(module: string): Promise<void> {
  if (loaded.has(module)) return;
  await import(module);
  loaded.add(module);
}

async function run(id: number, module: string, name: string, input: unknown, ctx: RunContext): Promise<void> {
  const controller = new AbortController();
  controllers.set(id, controller);
  try {
    const definition = await findFunction(module, name);
    const output: unknown = await definition.handler(input, {
      ...ctx,
      signal: controller.signal,
      logger: createRunLogger(id),
      progress: (fraction: number, message?: string) => {
        if (typeof fraction !== "number" || !Number.isFinite(fraction))
          throw new TypeError(`ctx.progress takes a number from 0 to 1, not ${String(fraction)}`);
        send({
          type: "progress",
          id,
          fraction,
          ...(message === undefined ? {} : { message: String(message) }),
        });
      },
    });
    send({ type: "done", id, ok: true, output: toJsonText(output) });
  } catch (error) {
    send({ type: "done", id, ok: false, error: toWireError(error) });
  } finally {
    controllers.delete(id);
  }
}

async function findFunction(module: string, name: string): Promise<FunctionDefinition> {
  await importModule(module);
  const definition = definedFunctions().get(name);
  if (definition === undefined) {
    throw new BatonError(
      "FunctionError",
      `function "${name}" is not defined by ${module} when the isolate imports it; call defineFunction at the top level of that module, or pass module: import.meta.url`,
      { retryable: false },
    );
  }
  return definition;
}

/** The output as JSON text; `undefined` becomes `null`. Throws `OutputInvalid` when it is not JSON. */
function toJsonText(output: unknown): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(output);
  } catch (error) {
    throw new BatonError(
      "OutputInvalid",
      `the function returned a value that is not JSON: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
  if (text === undefined && output !== undefined) {
    throw new BatonError("OutputInvalid", `the function returned a ${typeof output}, which is not JSON`);
  }
  return text ?? "null";
}

function createRunLogger(id: number): Logger {
  const log =
    (level: LogLevel) =>
    (message: string, fields?: LogFields): void => {
      send({ type: "log", id, level, message: String(message), fields: cloneable(fields) });
    };
  return { debug: log("debug"), info: log("info"), warn: log("warn"), error: log("error") };
}

/** Log fields that survive `postMessage` (functions and the like are dropped through JSON). */
function cloneable(fields: LogFields | undefined): LogFields | undefined {
  if (fields === undefined) return undefined;
  try {
    return JSON.parse(JSON.stringify(fields)) as LogFields;
  } catch {
    return { fields: "not serialisable" };
  }
}
