/**
 * Runs workflows through the orchestrator's own pure core on a simulated clock: the conformance
 * suite's stand-in for NATS, the workers and the wall clock, not for the orchestrator. Every
 * execution is an `ExecutionRecord` that only `startExecution` and `applyEvent` change, kept as
 * JSON between events as the KV keeps it; the commands a transition returns are carried out as
 * dispatch-commands.ts does, with the same pure builders (command-events.ts) for what goes back
 * as events:
 *
 * - `dispatchTask`: a scripted behaviour of the function answers, as a worker does
 *   (`task.succeeded` or `task.failed` after its delay, saying when it started); `cancelTask`
 *   stops an answer not yet given and answers `Cancelled` instead;
 * - `armTimer`: a timer on the simulated clock (the execution's wake-up), coming back at its due
 *   time as `timer.fired` with its token;
 * - `startItem`/`startChild`/`cancelItems`/`cancelChild`/`finish`: events to executions of
 *   their own, which answer their parent with `item.done`/`child.done`;
 * - `subscribe`/`unsubscribe`: which subjects an execution listens on; a case's message reaches
 *   the executions listening then, as a `message` event (as with NATS, nobody listening: lost);
 * - `emitEvent` is recorded; `recordEffect` is not carried out (the effect ledger only answers
 *   a task dispatched again after a crash, which never happens here).
 *
 * Signals, messages and the case's cancel are published to the main execution at their time.
 * Events published at the same simulated time are applied in the order they were published.
 */
import type { StepError } from "../../engine/errors.ts";
import { resultMessageId, taskMessageId } from "../../sdk/protocol.ts";
import type { Json, Template } from "../../engine/workflow/definition.ts";
import { durationMs } from "../../engine/workflow/duration.ts";
import { evaluateTemplate } from "../../engine/workflow/expressions.ts";
import type { CompiledWorkflow } from "../../engine/workflow/compile/compile-workflow.ts";
import type {
  CancelTask,
  DispatchTask,
  EmitEvent,
  ExecutionStatus,
  MachineContext,
  StartChild,
  Subscribe,
} from "../../engine/workflow/compile/machine-types.ts";
import {
  itemResult,
  joinItems,
  joinsCompleted,
  resultsKey,
  withJoinResults,
} from "../../engine/orchestrator/map-join.ts";
import {
  applyEvent,
  startExecution,
  type Applied,
  type ArmTimer,
} from "../../engine/orchestrator/apply-event.ts";
import {
  childCancel,
  childStart,
  itemCancels,
  itemStart,
  parentAnswer,
  timerFired,
  type OutgoingEvent,
  type TimerMessage,
} from "../../engine/orchestrator/command-events.ts";
import type { EngineEvent, StartEvent } from "../../engine/orchestrator/engine-events.ts";
import {
  isEnded,
  takesEvent,
  type ExecutionRecord,
  type OutboxEntry,
} from "../../engine/orchestrator/execution-record.ts";

export interface Behaviour {
  output?: Template;
  error?: { code: string; message?: string; retryable?: boolean };
  delay?: string;
}
export type FunctionScript = Behaviour | { attempts: Behaviour[] };

export interface SimulationCase {
  input?: Json;
  event?: Json;
  trigger?: Json;
  functions?: Record<string, FunctionScript>;
  signals?: { name: string; at?: string; payload?: Json }[];
  messages?: { subject: string; at?: string; data?: Json }[];
  cancelAt?: string;
}

export interface SimulationResult {
  status: ExecutionStatus | "running";
  output: Json;
  error: StepError | null;
  /** `<step>:succeeded|failed|skipped`, from the main execution's history, in order. */
  trace: string[];
  attempts: Record<string, number>;
  calls: Record<string, number>;
  emitted: { subject: string; data: Json }[];
  elapsedMs: number;
  maxInFlight: Record<string, number>;
}

export const simulationStart = Date.parse("2026-01-01T00:00:00Z");
const maxDeliveries = 2_000_000;
const mainId = "main";
const workerId = "simulated-worker";

/** What the simulated clock holds, in due order: events on their way, timers, a case's messages. */
type Pending =
  | { kind: "event"; outgoing: OutgoingEvent }
  | { kind: "timer"; timer: TimerMessage }
  | { kind: "message"; subject: string; data: Json };

interface Queued {
  at: number;
  seq: number;
  pending: Pending;
  /** A task's answer: cancelled by `cancelTask`, and it holds one of its function's slots until delivered. */
  task?: { key: string; function: string; cancelled?: boolean };
}

/** Runs one case of a workflow; `workflows` holds it and any workflow it starts as a child. */
export function simulate(
  workflows: ReadonlyMap<string, CompiledWorkflow>,
  main: string,
  testCase: SimulationCase,
): SimulationResult {
  return new Simulation(workflows, testCase).run(main);
}

class Simulation {
  private now = simulationStart;
  private seq = 0;
  private published = 0;
  private readonly queue: Queued[] = [];
  /** Execution id → its record as the KV holds it: JSON, parsed again for every event. */
  private readonly records = new Map<string, string>();
  /** `<execution>.<step>` → the subject it listens on, as the `baton_receives` bucket holds it. */
  private readonly listening = new Map<string, string>();
  private readonly inFlight: Record<string, number> = {};
  private mainEnded = false;
  private readonly result: SimulationResult = {
    status: "running",
    output: null,
    error: null,
    trace: [],
    attempts: {},
    calls: {},
    emitted: [],
    elapsedMs: 0,
    maxInFlight: {},
  };

  constructor(
    private readonly workflows: ReadonlyMap<string, CompiledWorkflow>,
    private readonly testCase: SimulationCase,
  ) {}

  run(main: string): SimulationResult {
    const compiled = this.workflows.get(main);
    if (!compiled) throw new Error(`no workflow "${main}"`);
    // What the API does: check the input (defaults filled in), then publish the start.
    const input = compiled.checkInput(this.testCase.input ?? {});
    if (!input.ok) throw new Error(`the case's input is invalid: ${JSON.stringify(input.problems)}`);
    const start: Omit<StartEvent, "at"> = {
      type: "execution.start",
      workflow: main,
      revision: 1,
      input: input.value,
      ...(this.testCase.event === undefined ? {} : { event: this.testCase.event }),
      ...(this.testCase.trigger === undefined ? {} : { trigger: this.testCase.trigger }),
    };
    this.publish({
      execution: mainId,
      event: start,
      id: `start:${mainId}`,
    });
    for (const signal of this.testCase.signals ?? []) {
      const event = { type: "signal", name: signal.name, payload: signal.payload ?? null };
      this.schedule(at(signal.at), {
        kind: "event",
        outgoing: { execution: mainId, event, id: this.seqId() },
      });
    }
    for (const message of this.testCase.messages ?? []) {
      this.schedule(at(message.at), {
        kind: "message",
        subject: message.subject,
        data: message.data ?? null,
      });
    }
    if (this.testCase.cancelAt !== undefined) {
      const event = { type: "cancel", reason: "cancelled by request" };
      this.schedule(at(this.testCase.cancelAt), {
        kind: "event",
        outgoing: { execution: mainId, event, id: `cancel:${mainId}` },
      });
    }

    let delivered = 0;
    while (this.queue.length > 0 && !this.mainEnded) {
      if (++delivered > maxDeliveries)
        throw new Error(`simulation did not end after ${maxDeliveries} deliveries`);
      const next = this.queue.shift()!;
      this.now = Math.max(this.now, next.at);
      if (next.task) {
        if (next.task.cancelled) continue;
        this.inFlight[next.task.function]!--;
      }
      this.deliver(next.pending);
    }
    return this.finalResult();
  }

  private deliver(pending: Pending) {
    switch (pending.kind) {
      case "event":
        return this.apply(pending.outgoing);
      case "timer":
        return this.fire(pending.timer);
      case "message":
        // As receive-subscriptions.ts forwards it: one `message` event to every execution listening.
        for (const [key, subject] of this.listening) {
          if (!subjectMatches(subject, pending.subject)) continue;
          const event = { type: "message", subject: pending.subject, data: pending.data };
          this.publish({ execution: key.slice(0, key.lastIndexOf(".")), event, id: this.seqId() });
        }
        return;
    }
  }

  /** What the orchestrator does with one event: start or advance the record, persist it, send its commands. */
  private apply({ execution, event: published, id }: OutgoingEvent) {
    const event = { at: this.now, ...published } as EngineEvent;
    const stored = this.records.get(execution);
    let applied: Applied | undefined;
    if (event.type === "execution.start") {
      if (stored !== undefined) return; // a start sent twice: JetStream drops the duplicate
      const compiled = this.workflow(event.workflow);
      applied = startExecution(compiled, execution, event);
      applied.record.applied = [id];
    } else {
      if (stored === undefined) throw new Error(`${event.type} for ${execution}, which never started`);
      const record = JSON.parse(stored) as ExecutionRecord;
      if (!takesEvent(record, event)) return;
      applied = applyEvent(this.workflow(record.workflow), record, this.withJoinResults(record, event), id);
    }
    if (!applied) return;
    this.records.set(execution, JSON.stringify(applied.record));
    if (execution === mainId) {
      this.mainEnded = isEnded(applied.record.status);
      for (const entry of applied.history) {
        const outcome = traceOutcomes[entry.type as keyof typeof traceOutcomes];
        if (outcome && entry.step) this.result.trace.push(`${entry.step}:${outcome}`);
      }
    }
    for (const command of applied.commands) this.carryOut(applied.record, command);
  }

  /** As the orchestrator does: the answer that completes a map's join gets every item's result. */
  private withJoinResults(record: ExecutionRecord, event: EngineEvent): EngineEvent {
    const results = new Map<string, Json[]>();
    for (const join of joinsCompleted(record, [event])) {
      const gathered = joinItems(record.id, join).map((item) => {
        const stored = this.records.get(item);
        if (stored === undefined) throw new Error(`the record of item ${item} is missing`);
        return itemResult(JSON.parse(stored) as ExecutionRecord);
      });
      results.set(resultsKey(join), gathered);
    }
    return withJoinResults([event], results)[0]!;
  }

  /** dispatch-commands.ts, on the simulated clock. */
  private carryOut(record: ExecutionRecord, command: OutboxEntry) {
    const params = command.params as never;
    switch (command.type) {
      case "dispatchTask":
        return this.dispatchTask(record, params);
      case "cancelTask":
        return this.cancelTask(record, params);
      case "armTimer":
        return this.armTimer(record, params);
      case "startItem":
        return this.publish(itemStart(record, params));
      case "cancelItems":
        for (const cancel of itemCancels(record, params)) this.publish(cancel);
        return;
      case "startChild": {
        const child = params as StartChild;
        const compiled = this.workflows.get(child.workflow);
        const workflow = compiled && { name: child.workflow, revision: 1, checkInput: compiled.checkInput };
        return this.publish(childStart(record, child, workflow));
      }
      case "cancelChild":
        return this.publish(childCancel(record, params));
      case "emitEvent": {
        const { subject, data } = params as EmitEvent;
        this.result.emitted.push({ subject, data });
        return;
      }
      case "subscribe": {
        const { step, subject } = params as Subscribe;
        this.listening.set(`${record.id}.${step}`, subject);
        return;
      }
      case "unsubscribe":
        this.listening.delete(`${record.id}.${(params as Subscribe).step}`);
        return;
      case "finish": {
        const answer = parentAnswer(record, params);
        if (answer) this.publish(answer);
        return;
      }
      case "recordEffect":
        return;
      default:
        throw new Error(`unknown command "${command.type}"`);
    }
  }

  /** A worker takes the task at once, and answers as the case scripts its function. */
  private dispatchTask(record: ExecutionRecord, task: DispatchTask) {
    const fn = task.function;
    this.result.calls[fn] = (this.result.calls[fn] ?? 0) + 1;
    this.inFlight[fn] = (this.inFlight[fn] ?? 0) + 1;
    this.result.maxInFlight[fn] = Math.max(this.result.maxInFlight[fn] ?? 0, this.inFlight[fn]);
    const attempt = { step: task.step, run: task.run, attempt: task.attempt };
    const report = (type: string, what: object): OutgoingEvent => ({
      execution: record.id,
      event: { type, ...attempt, worker: workerId, ...what },
      id: resultMessageId(record.id, task.step, task.run, task.attempt, type),
    });
    const startedAt = this.now;
    const behaviour = this.behaviourOf(fn, task.attempt);
    const answer = behaviour.error
      ? report("task.failed", {
          error: {
            code: behaviour.error.code,
            message: behaviour.error.message ?? behaviour.error.code,
            retryable: behaviour.error.retryable ?? true,
          },
        })
      : report("task.succeeded", {
          output: evaluateTemplate(behaviour.output ?? null, { args: task.input }, { now: this.now }),
        });
    // As a protocol-2 worker does, the result says when the attempt started.
    answer.event.startedAt = startedAt;
    const key = taskMessageId(record.id, task.step, task.run, task.attempt);
    this.schedule(
      this.now + (behaviour.delay ? durationMs(behaviour.delay) : 0),
      { kind: "event", outgoing: answer },
      {
        key,
        function: fn,
      },
    );
  }

  /** As a worker does: the run stops, and its answer is `Cancelled` (which the machine no longer waits for). */
  private cancelTask(record: ExecutionRecord, cancel: CancelTask) {
    const key = taskMessageId(record.id, cancel.step, cancel.run, cancel.attempt);
    const running = this.queue.find((queued) => queued.task?.key === key && !queued.task.cancelled);
    if (!running) return;
    running.task!.cancelled = true;
    this.inFlight[running.task!.function]!--;
    this.publish({
      execution: record.id,
      event: {
        type: "task.failed",
        step: cancel.step,
        run: cancel.run,
        attempt: cancel.attempt,
        worker: workerId,
        error: { code: "Cancelled", message: "the attempt is no longer wanted", retryable: false },
      },
      id: resultMessageId(record.id, cancel.step, cancel.run, cancel.attempt, "task.failed"),
    });
  }

  /**
   * Timers, all in one place: an armed timer is parked on the simulated clock until due, then
   * published as the event the orchestrator makes of it (`timerFired`). One re-armed or cancelled
   * since fires all the same; `applyEvent` recognises it by its token and ignores it.
   */
  private armTimer(record: ExecutionRecord, arm: ArmTimer) {
    this.schedule(arm.due, { kind: "timer", timer: { ...arm, execution: record.id } });
  }

  private fire(timer: TimerMessage) {
    this.publish(timerFired(timer));
  }

  private behaviourOf(name: string, attempt: number): Behaviour {
    const script = this.testCase.functions?.[name];
    if (!script) throw new Error(`the case does not say how function "${name}" behaves`);
    if ("attempts" in script) {
      const behaviours = script.attempts;
      return behaviours[Math.min(attempt, behaviours.length) - 1] ?? {};
    }
    return script;
  }

  /** An event published now: applied after whatever was published before it. */
  private publish(outgoing: OutgoingEvent) {
    this.schedule(this.now, { kind: "event", outgoing });
  }

  private schedule(when: number, pending: Pending, task?: Queued["task"]) {
    const entry: Queued = { at: when, seq: this.seq++, pending, ...(task ? { task } : {}) };
    // Keep the queue ordered by time, then by the order things were scheduled.
    let index = this.queue.length;
    while (index > 0 && this.queue[index - 1]!.at > when) index--;
    this.queue.splice(index, 0, entry);
  }

  /** Events published without a message id (signals, forwarded messages) are known by their stream sequence. */
  private seqId(): string {
    return `seq:${++this.published}`;
  }

  private mainRecord(): ExecutionRecord | undefined {
    const stored = this.records.get(mainId);
    return stored === undefined ? undefined : (JSON.parse(stored) as ExecutionRecord);
  }

  private finalResult(): SimulationResult {
    const record = this.mainRecord();
    if (!record) throw new Error("the main execution never started");
    const context = record.snapshot.context as unknown as MachineContext;
    for (const [step, state] of Object.entries(context.steps)) this.result.attempts[step] = state.attempts;
    if (isEnded(record.status)) {
      this.result.status = record.status;
      this.result.output = record.output ?? null;
      this.result.error = record.error ?? null;
      this.result.elapsedMs = record.endedAt! - simulationStart;
    }
    return this.result;
  }

  private workflow(name: string): CompiledWorkflow {
    const compiled = this.workflows.get(name);
    if (!compiled) throw new Error(`no workflow "${name}"`);
    return compiled;
  }
}

const traceOutcomes = { StepSucceeded: "succeeded", StepFailed: "failed", StepSkipped: "skipped" } as const;

function at(text: string | undefined): number {
  return simulationStart + (text === undefined ? 0 : durationMs(text));
}

/** NATS subject matching: `*` is one token, a final `>` one or more. */
function subjectMatches(pattern: string, subject: string): boolean {
  const wanted = pattern.split(".");
  const tokens = subject.split(".");
  for (const [index, token] of wanted.entries()) {
    if (token === ">") return tokens.length > index;
    if (index >= tokens.length || (token !== "*" && token !== tokens[index])) return false;
  }
  return wanted.length === tokens.length;
}
