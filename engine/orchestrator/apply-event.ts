/**
 * Applying one event to one execution, as a pure function of the record, the event and the
 * compiled workflow: load → xstate transition → the next record, the commands to send and the
 * history to write. No I/O here; orchestrator.ts persists the record (compare-and-set) and only
 * then sends what this returns.
 */
import type { AnyMachineSnapshot, AnyStateMachine } from "xstate";
import { pureInitialTransition, pureTransition } from "./pure-transition.ts";
import type { StepError } from "../errors.ts";
import type { CompiledWorkflow } from "../workflow/compile/compile-workflow.ts";
import type { Json } from "../workflow/definition.ts";
import type {
  Finish,
  MachineContext,
  MachineEvent,
  MachineInput,
} from "../workflow/compile/machine-types.ts";
import type { StartEvent, EngineEvent } from "./engine-events.ts";
import {
  appliedMemory,
  inboxLimit,
  signalKeyMemory,
  wakeTimer,
  type ExecutionRecord,
  type OutboxEntry,
  type RecordStatus,
} from "./execution-record.ts";
import type { PlannedSpan } from "../telemetry/trace-context.ts";
import { beginTrace, rootSpan, traceTransition } from "./execution-spans.ts";
import type { HistoryEntry } from "./history.ts";

export interface Applied {
  record: ExecutionRecord;
  /** Commands in the order the transition named them (timers as `armTimer`). */
  commands: OutboxEntry[];
  history: HistoryEntry[];
  /** Spans that ended (traced executions only): exported once the record is persisted. */
  spans: PlannedSpan[];
}

/** An armed timer: the orchestrator publishes it to BATON_TIMERS; it comes back as `timer.fired`. */
export interface ArmTimer {
  timer: string;
  token: string;
  due: number;
  event: { type: string };
}

export function machineOf(
  compiled: CompiledWorkflow,
  record: Pick<ExecutionRecord, "item" | "workflow">,
): AnyStateMachine {
  if (!record.item) return compiled.machine;
  const machine = compiled.itemMachines[record.item.step];
  if (!machine) throw new Error(`workflow ${record.workflow} has no map step "${record.item.step}"`);
  return machine;
}

/**
 * Starts an execution: the record it begins with and its first commands. A traced execution
 * (`traced`) keeps its trace in its record, and every later transition continues it.
 */
export function startExecution(
  compiled: CompiledWorkflow,
  id: string,
  start: StartEvent,
  options: { traced?: boolean } = {},
): Applied {
  const record: ExecutionRecord = {
    v: 1,
    id,
    workflow: start.workflow,
    revision: start.revision,
    ...(start.item ? { item: { step: start.item.step, index: start.item.index } } : {}),
    ...(start.parent ? { parent: start.parent } : {}),
    status: "running",
    startedAt: start.at,
    snapshot: { value: null, context: null },
    timers: {},
    applied: [],
    outbox: [],
    historySeq: 0,
    timerSeq: 0,
    ...(options.traced ? { trace: beginTrace(id, start) } : {}),
  };
  const input: MachineInput = {
    input: start.input,
    execution: { id, workflow: start.workflow, revision: start.revision, startedAt: start.at },
    ...(start.event === undefined ? {} : { event: start.event }),
    ...(start.trigger === undefined ? {} : { trigger: start.trigger }),
    ...(start.item
      ? {
          item: start.item.value,
          index: start.item.index,
          vars: start.item.vars,
          steps: start.item.steps as MachineInput["steps"] & object,
        }
      : {}),
  };
  const [snapshot, actions] = pureInitialTransition(machineOf(compiled, record), input);
  const applied = settle(record, snapshot, actions, start.at, []);
  planWake(record, applied.commands);
  if (record.trace) {
    const root = rootSpan(record, record.trace);
    applied.spans = [
      root,
      ...traceTransition(compiled, record, undefined, applied.commands, applied.history),
    ];
  }
  return applied;
}

/**
 * Applies an event to a record. `eventId` identifies the delivery: an event already applied (a
 * redelivery after a crash) changes nothing and yields `undefined`.
 */
export interface ApplyOptions {
  /** Whether no live worker serves a function: an attempt timeout then fails `FunctionUnavailable`. */
  unserved?: (fn: string) => boolean;
}

export function applyEvent(
  compiled: CompiledWorkflow,
  current: ExecutionRecord,
  event: EngineEvent,
  eventId: string,
  options: ApplyOptions = {},
): Applied | undefined {
  if (current.applied.includes(eventId)) return undefined;
  const record: ExecutionRecord = {
    ...current,
    timers: { ...current.timers },
    applied: [...current.applied.slice(-(appliedMemory - 1)), eventId],
  };
  const history: HistoryEntry[] = [];
  const at = event.at ?? Date.now();
  let machineEvent: MachineEvent;

  const ledger = effectLedgerCommand(compiled, record, event);
  switch (event.type) {
    case "execution.start":
    case "task.started":
      // Workers of the protocol's first form announced a start as an event of its own; the result
      // now carries it (`startedAt`), so a step costs one write. The orchestrator drops it before here.
      return undefined;
    case "timer.fired":
      if (event.timer === wakeTimer) return wakeUp(compiled, record, event.token, event.at, options);
      // A timer whose token no longer matches was cancelled (or re-armed) since it was set.
      if (record.timers[event.timer] !== event.token) return { record, commands: [], history, spans: [] };
      delete record.timers[event.timer];
      note(record, history, at, { type: "TimerFired", data: { timer: event.timer } });
      machineEvent = { ...event.event, at } as MachineEvent;
      break;
    case "task.succeeded":
      noteStarted(record, history, event, ledger);
      note(record, history, at, attemptNote("AttemptSucceeded", event));
      machineEvent = event;
      break;
    case "task.failed":
      noteStarted(record, history, event, ledger);
      note(record, history, at, {
        ...attemptNote("AttemptFailed", event),
        data: { error: event.error as unknown as Json },
      });
      machineEvent = event;
      break;
    case "retry":
      // Only a failed top-level execution can be retried; its parent (if any) has moved on.
      if (record.status !== "failed" || record.parent) return undefined;
      delete record.endedAt;
      delete record.output;
      record.error = null;
      machineEvent = event;
      break;
    case "signal": {
      const key = (event as { key?: unknown }).key;
      if (typeof key === "string") {
        // A keyed signal is applied once, also past JetStream's duplicate window.
        if (record.signalKeys?.includes(key)) return undefined;
        record.signalKeys = [...(record.signalKeys ?? []).slice(-(signalKeyMemory - 1)), key];
      }
      machineEvent = event;
      break;
    }
    case "cancel":
    case "child.done":
    case "item.done":
    case "message":
      machineEvent = event;
      break;
    default:
      // xstate's own delayed events, should one arrive without going through a timer.
      machineEvent = event;
  }

  const applied = step(compiled, record, machineEvent, at, history);
  if (event.type === "signal" || event.type === "message") boundInbox(record, history, at);
  applied.spans = traceTransition(compiled, record, event, applied.commands, applied.history);
  planWake(record, applied.commands);
  // The ledger learns every answer of an effect attempt, also one the machine no longer waits for.
  if (ledger) applied.commands.unshift({ type: "recordEffect", params: ledger as unknown as Json });
  return applied;
}

/**
 * Unclaimed signals and messages wait in the machine's inbox until a `receive` takes them; past
 * `inboxLimit` the oldest are dropped (each with an `InboxOverflow` history record), so no
 * sender can grow a record without bound.
 */
function boundInbox(record: ExecutionRecord, history: HistoryEntry[], at: number): void {
  const context = record.snapshot.context as unknown as MachineContext | null;
  if (!context || context.inbox.length <= inboxLimit) return;
  const dropped = context.inbox.slice(0, context.inbox.length - inboxLimit);
  record.snapshot = {
    ...record.snapshot,
    context: { ...context, inbox: context.inbox.slice(-inboxLimit) } as unknown as Json,
  };
  for (const entry of dropped)
    note(record, history, at, { type: "InboxOverflow", data: { dropped: entry as unknown as Json } });
}

/** One xstate transition of the record's machine, folded into the record. */
function step(
  compiled: CompiledWorkflow,
  record: ExecutionRecord,
  machineEvent: MachineEvent,
  at: number,
  history: HistoryEntry[],
): Applied {
  const machine = machineOf(compiled, record);
  const snapshot = machine.resolveState(record.snapshot as never);
  const [next, actions] = pureTransition(machine, snapshot, machineEvent);
  return settle(record, next, actions, at, history);
}

/**
 * The execution's wake-up fired: every deferred timer due by then fires, in due order, each as the
 * machine event it stands for (a transition may cancel timers due later in the same wake-up).
 * A wake-up with nothing due (its timer was cancelled, or an earlier wake-up took it) changes
 * nothing and is not written.
 */
function wakeUp(
  compiled: CompiledWorkflow,
  record: ExecutionRecord,
  token: string,
  at: number,
  options: ApplyOptions,
): Applied | undefined {
  const history: HistoryEntry[] = [];
  const commands: OutboxEntry[] = [];
  const spans: PlannedSpan[] = [];
  const deferred = { ...record.deferred };
  record.deferred = deferred;
  const wakes = { ...record.wakes };
  const wasArmed = token in wakes;
  delete wakes[token];
  record.wakes = wakes;
  const due = Object.entries(deferred)
    .filter(([, timer]) => timer.due <= at)
    .sort(([a, x], [b, y]) => x.due - y.due || tokenSeq(a) - tokenSeq(b));
  let fired = false;
  for (const [timerToken, timer] of due) {
    if (!(timerToken in deferred)) continue; // cancelled by an earlier timer of this wake-up
    delete deferred[timerToken];
    if (record.timers[timer.timer] !== timerToken) continue;
    if (record.status !== "running" && record.status !== "waiting") break;
    delete record.timers[timer.timer];
    fired = true;
    note(record, history, timer.due, { type: "TimerFired", data: { timer: timer.timer } });
    const applied = step(
      compiled,
      record,
      { ...timer.event, at: timer.due, ...unavailability(compiled, timer.timer, options) } as MachineEvent,
      timer.due,
      history,
    );
    commands.push(...applied.commands);
    spans.push(
      ...traceTransition(
        compiled,
        record,
        { type: "timer.fired", timer: timer.timer, token: timerToken, event: timer.event, at: timer.due },
        applied.commands,
        applied.history,
      ),
    );
  }
  if (!fired && !wasArmed) return undefined;
  planWake(record, commands);
  record.outbox = commands;
  return { record, commands, history, spans };
}

/** An attempt timeout of a `call` whose function nobody serves says so to the machine. */
function unavailability(compiled: CompiledWorkflow, timer: string, options: ApplyOptions) {
  // xstate names an `after` delay `xstate.after.<delay>.<state path>`; step names hold no dots.
  const step = /^xstate\.after\.attempt-timeout:([a-z][a-z0-9-]*)\./.exec(timer)?.[1];
  if (step === undefined || !options.unserved) return {};
  const fn = compiled.callSteps.get(step);
  return fn !== undefined && options.unserved(fn) ? { unavailable: true } : {};
}

/**
 * Arms the execution's next wake-up when no armed one comes soon enough for its earliest
 * deferred timer: one `armTimer` command at most, and none at all for a step whose attempt
 * timeout is later than a wake-up already armed (the usual case down a chain of steps).
 */
function planWake(record: ExecutionRecord, commands: OutboxEntry[]): void {
  const deferred = { ...record.deferred };
  record.deferred = deferred;
  let earliest = Infinity;
  for (const [token, timer] of Object.entries(deferred)) {
    if (record.timers[timer.timer] !== token) {
      delete deferred[token];
      continue;
    }
    earliest = Math.min(earliest, timer.due);
  }
  if (earliest === Infinity) return;
  const wakes = record.wakes ?? {};
  if (Object.values(wakes).some((due) => due <= earliest)) return;
  const token = `${record.id}.w${++record.timerSeq}`;
  record.wakes = { ...wakes, [token]: earliest };
  const arm: ArmTimer = { timer: wakeTimer, token, due: earliest, event: { type: wakeTimer } };
  commands.push({ type: "armTimer", params: arm as unknown as Json });
  record.outbox = commands;
}

/** Tokens end in their sequence number (`<execution>.t<n>`): timers due together fire in arming order. */
function tokenSeq(token: string): number {
  return Number(/(\d+)$/.exec(token)?.[1] ?? 0);
}

/** Results say when the attempt started (`startedAt`): its history entry travels in the same write. */
function noteStarted(
  record: ExecutionRecord,
  history: HistoryEntry[],
  event: { step: string; attempt: number; worker?: string; startedAt?: number },
  ledger: RecordEffect | undefined,
): void {
  if (typeof event.startedAt !== "number") return;
  note(record, history, event.startedAt, {
    ...(ledger ? { idempotencyKey: ledger.idempotencyKey } : {}),
    type: "AttemptStarted",
    step: event.step,
    attempt: event.attempt,
    ...(event.worker ? { worker: event.worker } : {}),
  });
}

/** The finish of an execution, naming the wake-ups it leaves armed (their messages are stale). */
function withStaleWakes(finish: Finish, record: ExecutionRecord): Finish {
  const wakes = record.wakes ?? {};
  const stale = Object.keys(wakes);
  return stale.length === 0 ? finish : { ...finish, staleWakes: stale, wakesDue: { ...wakes } };
}

/**
 * Fails an execution without its machine: an event that cannot be applied at all (a poison
 * event) ends it with `error`, so it does not wait forever. A parent hears of it as of any failure.
 */
export function failExecution(current: ExecutionRecord, error: StepError, at: number): Applied {
  const record: ExecutionRecord = { ...current, timers: {}, deferred: {}, wakes: {} };
  const history: HistoryEntry[] = [];
  note(record, history, at, { type: "ExecutionFailed", data: { error: error as unknown as Json } });
  record.status = "failed";
  record.endedAt = at;
  record.output = null;
  record.error = error;
  const finish = withStaleWakes({ status: "failed", output: null, error }, current);
  const commands: OutboxEntry[] = [{ type: "finish", params: finish as unknown as Json }];
  record.outbox = commands;
  return { record, commands, history, spans: [] };
}

/** What an effect step's ledger entry must learn from a task event. */
export interface RecordEffect {
  idempotencyKey: string;
  step: string;
  attempt: number;
  worker?: string;
  outcome?: "succeeded" | "failed";
  output?: Json;
  error?: Json;
}

/** The ledger change a task event brings, for effect steps only. */
function effectLedgerCommand(
  compiled: CompiledWorkflow,
  record: ExecutionRecord,
  event: EngineEvent,
): RecordEffect | undefined {
  if (event.type !== "task.started" && event.type !== "task.succeeded" && event.type !== "task.failed")
    return undefined;
  if (!compiled.effectSteps.has(event.step)) return undefined;
  const base = {
    idempotencyKey: `${record.id}/${event.step}/${event.run}`,
    step: event.step,
    attempt: event.attempt,
    ...(event.worker ? { worker: event.worker } : {}),
  };
  if (event.type === "task.succeeded") return { ...base, outcome: "succeeded", output: event.output };
  if (event.type === "task.failed")
    return { ...base, outcome: "failed", error: event.error as unknown as Json };
  return base;
}

interface RawAction {
  type: string;
  params: unknown;
}

/** Folds a transition's result into the record: snapshot, timers, status, history, outbox. */
function settle(
  record: ExecutionRecord,
  snapshot: AnyMachineSnapshot,
  actions: RawAction[],
  at: number,
  history: HistoryEntry[],
): Applied {
  const commands: OutboxEntry[] = [];
  let finished = false;
  for (const action of actions) {
    switch (action.type) {
      case "xstate.raise": {
        const { event, id, delay } = action.params as {
          event: { type: string };
          id?: string;
          delay?: number;
        };
        const timer = id ?? event.type;
        const token = `${record.id}.t${++record.timerSeq}`;
        const due = at + (delay ?? 0);
        record.timers[timer] = token;
        // Kept in the record; the execution's wake-up (planWake) fires it when due.
        record.deferred = { ...record.deferred, [token]: { timer, due, event } };
        note(record, history, at, {
          type: "TimerArmed",
          data: { timer, due: new Date(due).toISOString() },
        });
        break;
      }
      case "xstate.cancel": {
        const timer = (action.params as { sendId: string }).sendId;
        const token = record.timers[timer];
        delete record.timers[timer];
        if (token !== undefined && record.deferred?.[token]) {
          record.deferred = { ...record.deferred };
          delete record.deferred[token];
        }
        break;
      }
      case "record": {
        const params = action.params as Omit<HistoryEntry, "seq" | "at">;
        note(record, history, at, params);
        break;
      }
      case "finish": {
        const finish = action.params as Finish;
        finished = true;
        record.status = finish.status;
        record.endedAt = at;
        record.output = finish.output;
        record.error = finish.error;
        record.timers = {};
        record.deferred = {};
        // Wake-ups still armed would find an ended execution and change nothing: the finish
        // removes their messages (dispatch-commands.ts), so they hold no room until due.
        commands.push({ type: "finish", params: withStaleWakes(finish, record) as unknown as Json });
        record.wakes = {};
        break;
      }
      default:
        if (!action.type.startsWith("xstate."))
          commands.push({ type: action.type, params: action.params as Json });
    }
  }
  const context = snapshot.context as MachineContext;
  record.snapshot = { value: snapshot.value as Json, context: context as unknown as Json };
  // A failed execution's machine stays active (it can be retried); its status stays what `finish` said.
  if (snapshot.status === "active" && !finished) record.status = statusOf(context);
  record.outbox = commands;
  return { record, commands, history, spans: [] };
}

/** `running` while work is out (a task, a child, map items); `waiting` when only a timer, signal or message can move it. */
function statusOf(context: MachineContext): RecordStatus {
  const busy =
    Object.values(context.pending).some((pending) => pending.inFlight) ||
    Object.keys(context.maps).length > 0;
  return busy ? "running" : "waiting";
}

function attemptNote(type: string, event: { step: string; attempt: number; worker?: string }) {
  return {
    type,
    step: event.step,
    attempt: event.attempt,
    ...(event.worker ? { worker: event.worker } : {}),
  };
}

function note(
  record: ExecutionRecord,
  history: HistoryEntry[],
  at: number,
  entry: Omit<HistoryEntry, "seq" | "at">,
) {
  history.push({ seq: ++record.historySeq, at: new Date(at).toISOString(), ...entry });
}
