// One attempt from task message to ack: read the task, say it started, check its input, run the
// function in an isolate under its deadline and cancellation, report the outcome, and only
// once JetStream holds the report, ack the task. A task is never acked without a stored report,
// so a worker that dies anywhere in between leaves the task to be delivered again.
import { isElectionWeather } from "../nats-retry.ts";
import type { JsMsg } from "nats";
import { wireError } from "../errors.ts";
import {
  headers,
  protocolVersion,
  workerErrors,
  type CancelEnvelope,
  type JsonValue,
  type Lane,
  type ResultEnvelope,
  type TaskEnvelope,
  type WireError,
  type WorkerErrorCode,
  heartbeatIntervalMs,
} from "../protocol.ts";
import type { EffectLedger } from "../effect-ledger.ts";
import type { InputValidator } from "./input-validation.ts";
import type { Isolate, RunOutcome } from "./isolate.ts";
import type { IsolatePool } from "./isolate-pool.ts";
import { childLogger, errorFields, type Logger } from "./logger.ts";
import { ResultTooLargeError, type ReportHeaders, type ResultPublisher } from "./result-publisher.ts";
import type { AttemptProgress, ProgressIdentity } from "./progress-reporter.ts";
import { parseTask, type AttemptIdentity, type ParsedTask } from "./task-envelope.ts";
import { endTaskSpan, startTaskSpan } from "./task-span.ts";

/** A function as the runner serves it. */
export interface ServedFunction {
  readonly name: string;
  readonly module: string;
  readonly timeoutMs: number | undefined;
  readonly validateInput: InputValidator | undefined;
}

export interface TaskRunnerOptions {
  readonly workerId: string;
  readonly pool: IsolatePool;
  readonly publisher: ResultPublisher;
  readonly logger: Logger;
  /** How long a cancelled or timed-out handler may take to return before its isolate is terminated. */
  readonly graceMs: number;
  /** How long to wait before a task whose report could not be published is delivered again. */
  readonly retryReportDelayMs: number;
  /** The effect ledger: read before an effect runs, written when one completes (see protocol.ts). */
  readonly ledger: EffectLedger;
  /** Whether `worker` may still finish `attempt` (`<idempotencyKey>#<n>`) it claimed (attempt-holder.ts). */
  readonly workerAlive: (worker: string, attempt: string) => Promise<boolean>;
  /** Where `ctx.progress` reports go (progress-reporter.ts); none: they are dropped. */
  readonly progress?: (identity: ProgressIdentity) => AttemptProgress;
}

type StopReason =
  | { readonly code: "Cancelled" | "Timeout"; readonly message: string }
  /** The worker is closing: end the attempt without a report and give the task back. */
  | { readonly code: "HandBack"; readonly message: string };

interface RunningTask {
  readonly task: TaskEnvelope;
  readonly msg: JsMsg;
  /** Epoch ms the worker took the task: reported with the result. */
  readonly startedAt: number;
  isolate: Isolate | undefined;
  stop: StopReason | undefined;
  graceTimer: NodeJS.Timeout | undefined;
  /** The effect attempt (`<key>#<attempt>`) this delivery marked as held, until it is acked or nak'd. */
  holding?: string;
}

type Outcome =
  { readonly ok: true; readonly output: JsonValue } | { readonly ok: false; readonly error: WireError };

/** Cancels are remembered this long, for a task that arrives just after its execution was cancelled. */
const rememberCancelsMs = 60_000;
/** `setTimeout` takes at most 2^31-1 ms. */
const maxTimerMs = 2 ** 31 - 1;

export class TaskRunner {
  readonly #options: TaskRunnerOptions;
  readonly #running = new Set<RunningTask>();
  /** Cancels of the last minute, by execution, oldest first (a Map keeps insertion order). */
  readonly #recentCancels = new Map<string, { cancels: CancelEnvelope[]; until: number }>();
  readonly #idleWaiters: (() => void)[] = [];
  /**
   * Effect attempts (`<key>#<attempt>`) this process holds: from before the ledger claim until
   * their message is acked or nak'd (so through the report, which a failed effect has nowhere
   * else: nothing in the ledger says it ran).
   */
  readonly #effectsRunning = new Set<string>();

  constructor(options: TaskRunnerOptions) {
    this.#options = options;
  }

  /** Attempts in progress (from receipt to ack). */
  get running(): number {
    return this.#running.size;
  }

  /** Handles one task message to its end. Never throws. */
  async handle(msg: JsMsg, fn: ServedFunction, lane: Lane): Promise<void> {
    const parsed = parseTask(msg.data, msg.headers, fn.name, lane);
    if (!parsed.ok) return this.#refuse(msg, fn, parsed);
    const { task } = parsed;
    const entry: RunningTask = {
      task,
      msg,
      startedAt: Date.now(),
      isolate: undefined,
      stop: undefined,
      graceTimer: undefined,
    };
    this.#running.add(entry);
    const log = childLogger(this.#options.logger, {
      execution: task.execution,
      step: task.step,
      run: task.run,
      attempt: task.attempt,
      function: fn.name,
    });
    const span = startTaskSpan(task, fn.name, this.#options.workerId, msg.headers);
    try {
      const from = reportHeadersOf(msg, task);
      // The start is not an event of its own: it travels in the result (`startedAt`), so the
      // engine makes the attempt's start and end durable in one write. Live views hear it now.
      this.#options.publisher.announce({
        v: protocolVersion,
        type: "task.started",
        execution: task.execution,
        step: task.step,
        run: task.run,
        attempt: task.attempt,
        worker: this.#options.workerId,
        startedAt: entry.startedAt,
      });
      const outcome = await this.#executeOnce(entry, fn, log);
      if ("heldElsewhere" in outcome) {
        // Its holder is alive: it answers; this delivery comes back (and checks again) if it does not.
        endTaskSpan(span, { handedBack: true });
        msg.nak(heartbeatIntervalMs);
        return;
      }
      if ("duplicate" in outcome) {
        // Another copy of this attempt's task holds it and reports; this copy goes.
        endTaskSpan(span, { handedBack: true });
        msg.ack();
        return;
      }
      if (entry.stop?.code === "HandBack") {
        endTaskSpan(span, { handedBack: true });
        msg.nak();
        return;
      }
      endTaskSpan(span, outcome);
      await this.#reportAndAck(entry, outcome, from, log);
    } catch (error) {
      // Nothing above is meant to throw but NATS being away (or a stream electing a leader) for
      // longer than the requests' retries last; the task is delivered again rather than lost.
      if (isElectionWeather(error))
        log.info(
          "NATS is unavailable or electing a leader; the task will be delivered again",
          errorFields(error),
        );
      else log.error("unexpected failure while handling a task", errorFields(error));
      if (span.isRecording()) endTaskSpan(span, { handedBack: true });
      msg.nak(this.#options.retryReportDelayMs);
    } finally {
      clearTimeout(entry.graceTimer);
      if (entry.holding !== undefined) this.#effectsRunning.delete(entry.holding);
      this.#running.delete(entry);
      if (this.#running.size === 0) for (const wake of this.#idleWaiters.splice(0)) wake();
    }
  }

  /** Stops the running attempts that `cancel` names (and remembers it for a while). */
  cancel(cancel: CancelEnvelope): void {
    const now = Date.now();
    for (const [execution, recent] of this.#recentCancels) {
      if (recent.until >= now) break;
      this.#recentCancels.delete(execution);
    }
    const cancels = this.#recentCancels.get(cancel.execution)?.cancels ?? [];
    this.#recentCancels.delete(cancel.execution); // re-inserted last: it is now the newest
    this.#recentCancels.set(cancel.execution, {
      cancels: [...cancels, cancel],
      until: now + rememberCancelsMs,
    });
    for (const entry of this.#running) {
      if (matchesCancel(cancel, entry.task)) {
        this.#stop(entry, { code: "Cancelled", message: `the execution was cancelled: ${cancel.reason}` });
      }
    }
  }

  /** Whether this worker claims, runs or records the effect attempt `<idempotencyKey>#<n>` now. */
  holds(attempt: string): boolean {
    return this.#effectsRunning.has(attempt);
  }

  /** Tells JetStream the running tasks are still being worked on. */
  sendProgress(): void {
    for (const entry of this.#running) entry.msg.working();
  }

  /** Resolves when no attempt is in progress, or after `timeoutMs`. */
  async whenIdle(timeoutMs: number): Promise<void> {
    if (this.#running.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      new Promise<void>((resolve) => this.#idleWaiters.push(resolve)),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs))),
    ]);
    clearTimeout(timer);
  }

  /** Ends every running attempt without a report; their tasks go back to JetStream at once. */
  handBackAll(reason: string): void {
    for (const entry of this.#running) this.#stop(entry, { code: "HandBack", message: reason });
  }

  /**
   * Runs the attempt, except an effect the ledger already records as completed (a redelivery after
   * a crash between report and ack): that one is answered from the ledger. A completed effect is
   * recorded before it is reported, so no redelivery can run it again.
   */
  async #executeOnce(
    entry: RunningTask,
    fn: ServedFunction,
    log: Logger,
  ): Promise<Outcome | { readonly duplicate: true } | { readonly heldElsewhere: true }> {
    const { task } = entry;
    const key = task.effect ? task.idempotencyKey : undefined;
    if (key === undefined) return this.#execute(entry, fn, log);
    const attempt = `${key}#${task.attempt}`;
    // Delivered again while this process still claims or runs it (NATS was away past the ack
    // wait): the first copy will answer and ack. Marked before the claim is awaited: the ledger
    // cannot tell two copies of one message in one worker apart (same sequence, same worker), so
    // two claims in flight at once would both be told to run.
    if (this.#effectsRunning.has(attempt)) return { heldElsewhere: true };
    this.#effectsRunning.add(attempt);
    entry.holding = attempt; // let go in handle(), once the message is acked or nak'd
    const seed = { execution: task.execution, step: task.step };
    const identity = { attempt: task.attempt, worker: this.#options.workerId, taskSeq: entry.msg.seq };
    let claim = await this.#options.ledger.claim(key, seed, identity);
    if (typeof claim === "object") {
      // Another worker took this very message before: it runs it still, unless it is gone.
      if (await this.#options.workerAlive(claim.held, attempt)) return { heldElsewhere: true };
      log.warn("taking over an effect attempt from a worker that is gone", { holder: claim.held });
      claim = await this.#options.ledger.claim(key, seed, identity, { takeOver: claim.held });
    }
    if (claim === "completed") {
      const recorded = await this.#options.ledger.get(key);
      log.info("effect already completed; answering from the ledger", { idempotencyKey: key });
      return { ok: true, output: recorded?.output ?? null };
    }
    if (claim === "duplicate") {
      log.info("another copy of this attempt holds it; dropping this one", { idempotencyKey: key });
      return { duplicate: true };
    }
    if (typeof claim === "object") return { heldElsewhere: true };
    return await this.#runEffect(entry, fn, log, key);
  }

  async #runEffect(entry: RunningTask, fn: ServedFunction, log: Logger, key: string): Promise<Outcome> {
    const { task } = entry;
    const outcome = await this.#execute(entry, fn, log);
    if (!outcome.ok) return outcome;
    // The effect has happened: it must be recorded before anything else, or a redelivery would
    // run it again. NATS may be briefly away (a server restart): keep trying while the task lives.
    for (let delay = 100; ; delay = Math.min(delay * 2, 2_000)) {
      try {
        const recorded = await this.#options.ledger.complete(
          key,
          { execution: task.execution, step: task.step },
          { attempt: task.attempt, worker: this.#options.workerId, output: outcome.output },
        );
        // Another attempt completed first: report what the world saw, the first completion.
        return { ok: true, output: recorded.output ?? null };
      } catch (error) {
        if (Date.now() + delay >= task.deadline) throw error;
        log.warn("could not record a completed effect yet; trying again", errorFields(error));
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  async #execute(entry: RunningTask, fn: ServedFunction, log: Logger): Promise<Outcome> {
    const { task } = entry;
    const startedAt = Date.now();
    if (startedAt >= task.deadline) {
      return failed("Timeout", "the attempt's deadline had passed before a worker could start it");
    }
    const recent = this.#recentCancels.get(task.execution);
    const cancel =
      recent !== undefined && recent.until > startedAt
        ? recent.cancels.find((candidate) => matchesCancel(candidate, task))
        : undefined;
    if (cancel !== undefined) {
      return failed("Cancelled", `the execution was cancelled before the attempt started: ${cancel.reason}`);
    }
    const problems = fn.validateInput?.(task.input);
    if (problems !== undefined) {
      return {
        ok: false,
        error: wireError(
          "InputInvalid",
          `the input of "${fn.name}" does not match its schema: ${problems.map((p) => `${p.path || "/"} ${p.message}`).join("; ")}`,
          false,
          { problems },
        ),
      };
    }
    const deadline = Math.min(
      task.deadline,
      fn.timeoutMs === undefined ? Infinity : startedAt + fn.timeoutMs,
    );

    let isolate: Isolate;
    try {
      isolate = await this.#options.pool.acquire();
    } catch (error) {
      log.error("no isolate to run the attempt in", errorFields(error));
      return failed("WorkerCrashed", `the worker could not start an isolate: ${(error as Error).message}`);
    }
    if (entry.stop !== undefined) {
      // Cancelled (or given back) while waiting for the isolate: do not start the handler at all.
      this.#options.pool.release(isolate);
      return failed("Cancelled", entry.stop.message);
    }
    entry.isolate = isolate;
    const deadlineTimer = armDeadline(deadline, () =>
      this.#stop(entry, {
        code: "Timeout",
        message:
          deadline === task.deadline
            ? `"${fn.name}" ran past the attempt's deadline (${deadline - startedAt} ms after it started)`
            : `"${fn.name}" ran past its timeout of ${fn.timeoutMs} ms`,
      }),
    );
    const progress = this.#options.progress?.({
      execution: task.execution,
      step: task.step,
      run: task.run,
      attempt: task.attempt,
      worker: this.#options.workerId,
    });
    const outcome = await isolate.run({
      module: fn.module,
      fn: fn.name,
      input: task.input,
      ctx: {
        executionId: task.execution,
        workflow: task.workflow,
        step: task.step,
        run: task.run,
        attempt: task.attempt,
        idempotencyKey: task.idempotencyKey,
        effect: task.effect,
        function: fn.name,
        worker: this.#options.workerId,
        deadline,
      },
      onLog: (level, message, fields) => log[level](message, fields),
      onProgress: (fraction, message) => progress?.report(fraction, message),
    });
    progress?.close();
    deadlineTimer.clear();
    // The grace timer must not outlive the attempt: the isolate may serve another one next.
    clearTimeout(entry.graceTimer);
    entry.isolate = undefined;
    this.#options.pool.release(isolate);
    return toOutcome(outcome, entry.stop, fn.name, task.effect);
  }

  /** Records why an attempt must end, and ends it once it runs in an isolate. The first reason wins, but giving the task back overrides. */
  #stop(entry: RunningTask, reason: StopReason): void {
    if (entry.stop !== undefined && reason.code !== "HandBack") return;
    entry.stop = reason;
    if (entry.isolate !== undefined) this.#enforceStop(entry, entry.isolate);
  }

  /** Aborts the handler's signal, and terminates its isolate when it has not returned within the grace. */
  #enforceStop(entry: RunningTask, isolate: Isolate): void {
    const { stop } = entry;
    if (stop === undefined) return;
    clearTimeout(entry.graceTimer);
    if (stop.code === "HandBack") {
      void isolate.terminate();
      return;
    }
    isolate.abort(stop.code, stop.message);
    entry.graceTimer = setTimeout(() => void isolate.terminate(), this.#options.graceMs);
  }

  async #reportAndAck(entry: RunningTask, outcome: Outcome, from: ReportHeaders, log: Logger): Promise<void> {
    const { task, msg } = entry;
    const { startedAt } = entry;
    let report = this.#report(
      task,
      outcome.ok
        ? { type: "task.succeeded", output: outcome.output, startedAt }
        : { type: "task.failed", error: outcome.error, startedAt },
    );
    try {
      try {
        await this.#options.publisher.publish(report, from, task.reply);
      } catch (error) {
        if (!(error instanceof ResultTooLargeError)) throw error;
        report = this.#report(task, {
          type: "task.failed",
          startedAt,
          error: wireError(
            "OutputInvalid",
            `${error.message}; return a reference to large data (an object store key, a URL) instead of the data`,
            false,
          ),
        });
        await this.#options.publisher.publish(report, from, task.reply);
      }
    } catch (error) {
      if (isElectionWeather(error))
        log.info(
          "NATS is unavailable or electing a leader; the outcome is reported when the task is delivered again",
          errorFields(error),
        );
      else log.error("could not report the outcome; the task will be delivered again", errorFields(error));
      msg.nak(this.#options.retryReportDelayMs);
      return;
    }
    try {
      await msg.ackAck();
    } catch (error) {
      // The report is stored; a redelivery runs the attempt again and its report is a duplicate.
      log.warn("the ack of a reported task was not confirmed", errorFields(error));
    }
  }

  async #refuse(msg: JsMsg, fn: ServedFunction, parsed: ParsedTask & { ok: false }): Promise<void> {
    const { identity, problems } = parsed;
    this.#options.logger.warn("refusing a task message that cannot be read", {
      subject: msg.subject,
      sequence: msg.seq,
      function: fn.name,
      problems,
      ...identity,
    });
    if (identity !== undefined) {
      const error = wireError(
        "TaskInvalid",
        `worker ${this.#options.workerId} cannot read the task for "${fn.name}": ${problems.join("; ")}`,
        false,
      );
      await this.#options.publisher
        .publish(
          this.#report(identity, { type: "task.failed", error }),
          reportHeadersOf(msg, undefined),
          identity.reply,
        )
        .catch((reason: unknown) =>
          this.#options.logger.error("could not report an unreadable task", errorFields(reason)),
        );
    }
    msg.term();
  }

  #report(
    identity: AttemptIdentity,
    what:
      | { type: "task.succeeded"; output: JsonValue; startedAt?: number }
      | { type: "task.failed"; error: WireError; startedAt?: number },
  ): ResultEnvelope {
    const { execution, step, run, attempt } = identity;
    return { v: protocolVersion, execution, step, run, attempt, worker: this.#options.workerId, ...what };
  }
}

function toOutcome(outcome: RunOutcome, stop: StopReason | undefined, fn: string, effect: boolean): Outcome {
  // An effect whose handler returned has happened, deadline or not: it must be reported (and
  // recorded in the ledger) as done, or a retry would do it again.
  if (effect && outcome.kind === "returned")
    return { ok: true, output: JSON.parse(outcome.output) as JsonValue };
  if (stop?.code === "Timeout") return failed("Timeout", stop.message);
  if (outcome.kind === "returned") return { ok: true, output: JSON.parse(outcome.output) as JsonValue };
  if (stop?.code === "Cancelled") return failed("Cancelled", stop.message);
  switch (outcome.kind) {
    case "threw":
    case "crashed":
      return { ok: false, error: outcome.error };
    case "terminated":
      return failed("WorkerCrashed", `the isolate running "${fn}" was terminated`);
    default:
      return outcome satisfies never;
  }
}

function failed(code: WorkerErrorCode, message: string): Outcome {
  return { ok: false, error: wireError(code, message, workerErrors[code].retryable) };
}

function matchesCancel(cancel: CancelEnvelope, task: TaskEnvelope): boolean {
  return (
    cancel.execution === task.execution &&
    (cancel.step === undefined || cancel.step === task.step) &&
    (cancel.run === undefined || cancel.run === task.run) &&
    (cancel.attempt === undefined || cancel.attempt === task.attempt)
  );
}

function reportHeadersOf(msg: JsMsg, task: TaskEnvelope | undefined): ReportHeaders {
  const value = (name: string): string | undefined => {
    const text = msg.headers?.get(name);
    return text === undefined || text === "" ? undefined : text;
  };
  return {
    traceparent: value(headers.traceparent),
    tracestate: value(headers.tracestate),
    idempotencyKey: task?.idempotencyKey,
  };
}

/** A timer for an epoch-ms deadline, however far away. */
function armDeadline(deadline: number, onDeadline: () => void): { clear(): void } {
  let timer: NodeJS.Timeout;
  const arm = (): void => {
    const left = deadline - Date.now();
    timer =
      left <= 0
        ? setTimeout(onDeadline, 0)
        : setTimeout(left > maxTimerMs ? arm : onDeadline, Math.min(left, maxTimerMs));
  };
  arm();
  return { clear: () => clearTimeout(timer) };
}
