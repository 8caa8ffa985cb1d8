// What the worker and its isolates (worker threads) say to each other. Types only.
import type { WireError } from "../protocol.ts";
import type { LogFields, LogLevel } from "./logger.ts";

/** `workerData` of an isolate. */
export interface IsolateData {
  /**
   * The modules to import at start (they define the functions the worker serves); absent when the
   * thread boots before they are known (a prebooted isolate), which then waits for a `load`.
   */
  readonly modules?: readonly string[];
  /** tsx's loader API, registered before importing a TypeScript module the thread was not booted for. */
  readonly tsxApiUrl: string;
  /** Whether the thread's bootstrap registered tsx already (the runtime or a module given at start is TypeScript). */
  readonly tsxRegistered: boolean;
}

/** The attempt's identity as the handler sees it (`FunctionContext` without signal, logger and progress). */
export interface RunContext {
  readonly executionId: string;
  readonly workflow: string;
  readonly step: string;
  readonly run: number;
  readonly attempt: number;
  readonly idempotencyKey: string | undefined;
  readonly effect: boolean;
  readonly function: string;
  readonly worker: string;
  readonly deadline: number;
}

export type ToIsolate =
  /** The modules of a prebooted isolate (sent once, first). */
  | { readonly type: "load"; readonly modules: readonly string[] }
  | {
      readonly type: "run";
      readonly id: number;
      readonly module: string;
      readonly fn: string;
      readonly input: unknown;
      readonly ctx: RunContext;
    }
  /** Aborts `ctx.signal` of the run, with a `BatonError(code, reason)` as the signal's reason. */
  | {
      readonly type: "abort";
      readonly id: number;
      readonly code: "Cancelled" | "Timeout";
      readonly reason: string;
    };

export type FromIsolate =
  /** Sent once the modules are imported: which functions they defined, and which modules failed. */
  | {
      readonly type: "ready";
      readonly functions: readonly string[];
      readonly failures: readonly { module: string; message: string }[];
    }
  /** `output` is the JSON text of what the handler returned. */
  | { readonly type: "done"; readonly id: number; readonly ok: true; readonly output: string }
  | { readonly type: "done"; readonly id: number; readonly ok: false; readonly error: WireError }
  /** `ctx.progress(fraction, message)`: the fraction is a finite number. */
  | { readonly type: "progress"; readonly id: number; readonly fraction: number; readonly message?: string }
  | {
      readonly type: "log";
      readonly id: number;
      readonly level: LogLevel;
      readonly message: string;
      readonly fields: LogFields | undefined;
    };
