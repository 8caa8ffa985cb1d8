// One isolate: a worker thread with its own heap limit that imports the function modules and runs
// one attempt at a time. The worker process watches it: a thread that exits, throws outside the
// handler or runs out of memory ends only the attempt it was running.
import { Worker } from "node:worker_threads";
import { wireError } from "../errors.ts";
import type { WireError } from "../protocol.ts";
import type { FromIsolate, IsolateData, RunContext, ToIsolate } from "./isolate-messages.ts";
import type { LogFields, LogLevel } from "./logger.ts";

/** How an attempt in an isolate ended. */
export type RunOutcome =
  /** `output` is JSON text. */
  | { readonly kind: "returned"; readonly output: string }
  | { readonly kind: "threw"; readonly error: WireError }
  /** The isolate died under the attempt (`WorkerCrashed`). */
  | { readonly kind: "crashed"; readonly error: WireError }
  /** The worker terminated the isolate (deadline or cancellation past its grace). */
  | { readonly kind: "terminated" };

export interface RunJob {
  readonly module: string;
  readonly fn: string;
  readonly input: unknown;
  readonly ctx: RunContext;
  readonly onLog: (level: LogLevel, message: string, fields: LogFields | undefined) => void;
  readonly onProgress?: (fraction: number, message: string | undefined) => void;
}

export interface IsolateOptions {
  /**
   * The function modules to import. Left out, the thread boots without them (Node's own start is
   * most of an isolate's) and imports them when `load` names them.
   */
  readonly modules?: readonly string[];
  /** The isolate's old-generation heap limit, in MB. */
  readonly heapMb: number;
  /** Called once when the thread has exited, whatever the reason. */
  readonly onExit?: (isolate: Isolate) => void;
}

export interface IsolateReady {
  readonly functions: readonly string[];
  readonly failures: readonly { module: string; message: string }[];
}

// The isolate is a plain worker thread. Its runtime is this directory's isolate-runtime: the
// TypeScript source when this code runs from the sources, the compiled .js from dist/. When the
// runtime or a function module is TypeScript, the thread registers tsx's loader hooks itself
// (Node 20 does not pass a parent's module hooks on to its workers) before importing them.
const runtimeUrl = new URL(
  import.meta.url.endsWith(".ts") ? "./isolate-runtime.ts" : "./isolate-runtime.js",
  import.meta.url,
).href;
const tsxApiUrl = import.meta.resolve("tsx/esm/api");
const isTypeScript = (url: string): boolean => /\.[cm]?tsx?$/.test(url);

let nextRunId = 1;

export class Isolate {
  readonly ready: Promise<IsolateReady>;
  readonly #worker: Worker;
  readonly #heapMb: number;
  #current: { id: number; job: RunJob; resolve: (outcome: RunOutcome) => void } | undefined;
  #hasStarted = false;
  #hasExited = false;
  #isTerminating = false;
  #hasModules: boolean;
  #lastError: unknown;

  constructor(options: IsolateOptions) {
    this.#heapMb = options.heapMb;
    this.#hasModules = options.modules !== undefined;
    const needsTsx = isTypeScript(runtimeUrl) || (options.modules ?? []).some(isTypeScript);
    const bootstrap = needsTsx
      ? `import(${JSON.stringify(tsxApiUrl)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(runtimeUrl)}); });`
      : `import(${JSON.stringify(runtimeUrl)});`;
    const data: IsolateData = {
      ...(options.modules === undefined ? {} : { modules: options.modules }),
      tsxApiUrl,
      tsxRegistered: needsTsx,
    };
    this.#worker = new Worker(bootstrap, {
      eval: true,
      workerData: data,
      resourceLimits: { maxOldGenerationSizeMb: options.heapMb },
    });
    // The worker process must be free to exit while idle isolates wait for work.
    this.#worker.unref();

    let resolveReady: (ready: IsolateReady) => void = () => {};
    let rejectReady: (error: Error) => void = () => {};
    this.ready = new Promise<IsolateReady>((resolve, reject) => {
      resolveReady = resolve;
      rejectReady = reject;
    });
    this.ready.catch(() => {}); // Observed by whoever acquires the isolate.

    this.#worker.on("message", (message: FromIsolate) => {
      switch (message.type) {
        case "ready":
          this.#hasStarted = true;
          resolveReady({ functions: message.functions, failures: message.failures });
          break;
        case "done": {
          const current = this.#current;
          if (current === undefined || current.id !== message.id) return;
          this.#current = undefined;
          current.resolve(
            message.ok
              ? { kind: "returned", output: message.output }
              : { kind: "threw", error: message.error },
          );
          break;
        }
        case "progress":
          if (this.#current?.id === message.id)
            this.#current.job.onProgress?.(message.fraction, message.message);
          break;
        case "log":
          if (this.#current?.id === message.id)
            this.#current.job.onLog(message.level, message.message, message.fields);
          break;
        default:
          message satisfies never;
      }
    });
    this.#worker.on("error", (error) => {
      this.#lastError = error;
    });
    this.#worker.on("exit", (code) => {
      this.#hasExited = true;
      rejectReady(new Error(`the isolate exited while starting: ${this.#describeExit(code)}`));
      const current = this.#current;
      this.#current = undefined;
      if (current !== undefined) {
        current.resolve(
          this.#isTerminating
            ? { kind: "terminated" }
            : { kind: "crashed", error: wireError("WorkerCrashed", this.#describeExit(code), true) },
        );
      }
      options.onExit?.(this);
    });
  }

  /** Whether the isolate was given its modules (at its start, or by `load`). */
  get hasModules(): boolean {
    return this.#hasModules;
  }

  /** Names the modules of an isolate started without them; `ready` follows their import. Once. */
  load(modules: readonly string[]): void {
    if (this.#hasModules) throw new Error("Isolate.load: the isolate has its modules already");
    this.#hasModules = true;
    this.#post({ type: "load", modules });
  }

  /** Whether the isolate got as far as importing the function modules. */
  get hasStarted(): boolean {
    return this.#hasStarted;
  }

  /** Whether the thread still runs (it may be busy). */
  get isAlive(): boolean {
    return !this.#hasExited && !this.#isTerminating;
  }

  get isBusy(): boolean {
    return this.#current !== undefined;
  }

  /** Runs one attempt; resolves however it ends (never rejects). One attempt at a time. */
  run(job: RunJob): Promise<RunOutcome> {
    if (this.#current !== undefined) throw new Error("Isolate.run: the isolate is busy");
    if (!this.isAlive) {
      return Promise.resolve({
        kind: "crashed",
        error: wireError("WorkerCrashed", "the isolate had exited before the attempt started", true),
      });
    }
    const id = nextRunId++;
    return new Promise<RunOutcome>((resolve) => {
      this.#current = { id, job, resolve };
      this.#post({ type: "run", id, module: job.module, fn: job.fn, input: job.input, ctx: job.ctx });
    });
  }

  /** Aborts the running attempt's `ctx.signal`. */
  abort(code: "Cancelled" | "Timeout", reason: string): void {
    const current = this.#current;
    if (current !== undefined) this.#post({ type: "abort", id: current.id, code, reason });
  }

  /** Stops the thread, whatever it is doing (an endless loop included). */
  async terminate(): Promise<void> {
    if (this.#hasExited) return;
    this.#isTerminating = true;
    await this.#worker.terminate();
  }

  #post(message: ToIsolate): void {
    try {
      this.#worker.postMessage(message);
    } catch (error) {
      // Input that cannot be cloned never reaches here (it came from JSON), but a dying thread can refuse.
      this.#lastError = error;
    }
  }

  #describeExit(code: number): string {
    const error = this.#lastError;
    if (error === undefined)
      return `the function ended its isolate (exit code ${code}, e.g. process.exit(${code}))`;
    const {
      code: errorCode,
      name,
      message,
    } = typeof error === "object" && error !== null
      ? (error as { code?: unknown; name?: unknown; message?: unknown })
      : {};
    if (errorCode === "ERR_WORKER_OUT_OF_MEMORY") {
      return `the function ran out of memory (the isolate's heap limit is ${this.#heapMb} MB)`;
    }
    const what = typeof name === "string" ? name : typeof error;
    const text = typeof message === "string" ? message : typeof error === "string" ? error : "(no message)";
    return `the function crashed its isolate with an uncaught ${what}: ${text}`;
  }
}
