/**
 * Carrying out the commands a transition named, after its record is persisted. Every command is
 * a publish that its receiver deduplicates (a JetStream message id, or an idempotent cancel),
 * so sending a record's outbox twice (after a crash, or by two replicas) changes nothing.
 */
import { retryNats } from "../../sdk/nats-retry.ts";
import {
  headers as natsHeaders,
  type JetStreamClient,
  type KV,
  type NatsConnection,
  type MsgHdrs,
} from "nats";
import {
  headers,
  protocolVersion,
  streams,
  subjects,
  taskMessageId,
  type CancelEnvelope,
  type WireError,
  type TaskEnvelope,
} from "../../sdk/protocol.ts";
import type {
  CancelItems,
  CancelTask,
  DispatchTask,
  EmitEvent,
  Finish,
  StartChild,
  StartItem,
  Subscribe,
} from "../workflow/compile/machine-types.ts";
import type { CompiledWorkflow } from "../workflow/compile/compile-workflow.ts";
import { isNotFound, retentionSubject } from "../nats/topology.ts";
import type { ArmTimer, RecordEffect } from "./apply-event.ts";
import {
  childCancel,
  childStart,
  itemCancels,
  itemStart,
  parentAnswer,
  type OutgoingEvent,
  type TimerMessage,
} from "./command-events.ts";
import type { EffectLedger } from "./effect-ledger.ts";
import type { ExecutionRecord, OutboxEntry } from "./execution-record.ts";
import type { WorkflowStore } from "../nats/workflow-store.ts";
import type { ReceiveSubscriptions } from "./receive-subscriptions.ts";
import { refuseSubject } from "../workflow/subject-guard.ts";
import { armTimer, removeIndexedWakes } from "./timer-index.ts";

export interface DispatchDeps {
  nc: NatsConnection;
  js: JetStreamClient;
  workflows: WorkflowStore;
  ledger: EffectLedger;
  receives: ReceiveSubscriptions;
  retentionMs: number;
  /** How many partitions executions are shared in: an event's subject names its execution's. */
  partitions: number;
  /** Engine-wide state (`baton_engine`): where the timer index's promotion has come to. */
  engineState: KV;
  /** The timer index's slot length (timer-index.ts): wake-ups due later than two slots wait there. */
  timerSlotMs: number;
  /** A submitted workflow revision, compiled (a child's input is checked against it). */
  compiledFor: (name: string, revision: number) => Promise<CompiledWorkflow | undefined>;
  log?: { info(message: string, fields?: Record<string, unknown>): void };
}

export type { TimerMessage } from "./command-events.ts";

export const expireEvent = "execution.expire";

export async function dispatchCommands(
  deps: DispatchDeps,
  record: ExecutionRecord,
  commands: OutboxEntry[],
): Promise<void> {
  await Promise.all(commands.map((command) => dispatchOne(deps, record, command)));
}

async function dispatchOne(deps: DispatchDeps, record: ExecutionRecord, command: OutboxEntry): Promise<void> {
  const { js, nc } = deps;
  const params = command.params as never;
  switch (command.type) {
    case "dispatchTask":
      return dispatchTask(deps, record, params, command.traceparent);
    case "cancelTask": {
      // The attempt is named: a retry of the same step run (after a timeout) must not be cancelled too.
      const { step, run, attempt } = params as CancelTask;
      const cancel: CancelEnvelope = {
        v: protocolVersion,
        execution: record.id,
        step,
        run,
        attempt,
        reason: "the attempt is no longer wanted",
      };
      nc.publish(subjects.cancel(record.id), JSON.stringify(cancel));
      return;
    }
    case "armTimer": {
      const timer: TimerMessage = { ...(params as ArmTimer), execution: record.id };
      return armTimer(js, deps.engineState, timer, deps.timerSlotMs);
    }
    case "startItem":
      return startItem(deps, record, params, command.traceparent);
    case "cancelItems":
      await Promise.all(itemCancels(record, params as CancelItems).map((cancel) => publish(deps, cancel)));
      return;
    case "startChild":
      return startChild(deps, record, params, command.traceparent);
    case "cancelChild":
      return publish(deps, childCancel(record, params));
    case "emitEvent": {
      const { subject, data, id } = params as EmitEvent;
      // The emit step refuses such subjects (SubjectRefused); this fences records written before it did.
      if (refuseSubject(subject)) return;
      await retryNats(async () => {
        try {
          await js.publish(subject, JSON.stringify(data), { msgID: id });
        } catch (error) {
          if (!/no responders|503/i.test(String(error))) throw error;
          // "No responders": no stream captures the subject, or the one that does is electing a
          // leader right now (then the publish is tried again). With none, JetStream cannot
          // deduplicate, so publish plainly.
          if (await isCaptured(js, subject)) throw error;
          nc.publish(subject, JSON.stringify(data));
        }
      });
      return;
    }
    case "subscribe":
      await deps.receives.add(record.id, (params as Subscribe).step, (params as Subscribe).subject);
      return;
    case "unsubscribe":
      await deps.receives.remove(record.id, (params as Subscribe).step);
      return;
    case "finish":
      return finish(deps, record, params);
    case "recordEffect":
      return recordEffect(deps, record, params);
    default:
      throw new Error(`unknown command "${command.type}"`);
  }
}

async function dispatchTask(
  deps: DispatchDeps,
  record: ExecutionRecord,
  task: DispatchTask,
  traceparent: string | undefined,
): Promise<void> {
  const { js, ledger } = deps;
  if (task.effect && task.idempotencyKey) {
    const key = task.idempotencyKey;
    const entry = await ledger.get(key);
    if (entry?.completed) {
      // Completed once: answer from the ledger, never run it again.
      await publishEvent(
        js,
        deps.partitions,
        record.id,
        {
          type: "task.succeeded",
          step: task.step,
          run: task.run,
          attempt: task.attempt,
          output: entry.output ?? null,
          worker: "ledger",
        },
        `ledger:${key}:${task.attempt}`,
      );
      return;
    }
    await ledger.change(key, { execution: record.id, step: task.step }, (ledgerEntry) => {
      if (!ledgerEntry.attempts.some((attempt) => attempt.attempt === task.attempt)) {
        ledgerEntry.attempts.push({ attempt: task.attempt, dispatchedAt: new Date().toISOString() });
      }
    });
  }
  const envelope: TaskEnvelope = {
    v: protocolVersion,
    execution: record.id,
    workflow: record.workflow,
    step: task.step,
    run: task.run,
    attempt: task.attempt,
    function: task.function,
    input: task.input,
    effect: task.effect,
    ...(task.idempotencyKey ? { idempotencyKey: task.idempotencyKey } : {}),
    deadline: Date.now() + task.timeoutMs,
    reply: subjects.result(record.id, deps.partitions),
  };
  const h = taskHeaders(record, task, traceparent, envelope.reply);
  const body = JSON.stringify(envelope);
  await retryNats(() =>
    js.publish(subjects.task(task.effect ? "effect" : "pure", task.function), body, {
      msgID: taskMessageId(record.id, task.step, task.run, task.attempt),
      headers: h,
    }),
  );
}

function taskHeaders(
  record: ExecutionRecord,
  task: DispatchTask,
  traceparent: string | undefined,
  reply: string,
): MsgHdrs {
  const h = natsHeaders();
  h.set(headers.protocol, String(protocolVersion));
  h.set(headers.reply, reply);
  h.set(headers.execution, record.id);
  h.set(headers.step, task.step);
  h.set(headers.run, String(task.run));
  h.set(headers.attempt, String(task.attempt));
  if (task.idempotencyKey) h.set(headers.idempotencyKey, task.idempotencyKey);
  // The attempt's span: the worker's span of the run hangs under it.
  if (traceparent) h.set(headers.traceparent, traceparent);
  return h;
}

async function recordEffect(
  deps: DispatchDeps,
  record: ExecutionRecord,
  change: RecordEffect,
): Promise<void> {
  const seed = { execution: record.id, step: change.step };
  if (change.outcome === "succeeded") {
    await deps.ledger.complete(change.idempotencyKey, seed, {
      attempt: change.attempt,
      ...(change.worker ? { worker: change.worker } : {}),
      output: change.output ?? null,
    });
    return;
  }
  const now = new Date().toISOString();
  await deps.ledger.change(change.idempotencyKey, seed, (entry) => {
    let attempt = entry.attempts.find((candidate) => candidate.attempt === change.attempt);
    if (!attempt) {
      attempt = { attempt: change.attempt, dispatchedAt: now };
      entry.attempts.push(attempt);
    }
    if (change.worker) attempt.worker = change.worker;
    if (change.outcome === "failed") {
      attempt.outcome = "failed";
      attempt.endedAt = now;
      if (change.error) attempt.error = change.error as unknown as WireError;
    }
  });
}

async function startItem(
  deps: DispatchDeps,
  record: ExecutionRecord,
  item: StartItem,
  traceparent: string | undefined,
): Promise<void> {
  await publish(deps, itemStart(record, item, traceparent));
}

async function startChild(
  deps: DispatchDeps,
  record: ExecutionRecord,
  child: StartChild,
  traceparent: string | undefined,
): Promise<void> {
  const stored = await deps.workflows.get(child.workflow);
  const compiled = stored && (await deps.compiledFor(stored.name, stored.revision));
  const workflow = stored && compiled && { ...stored, checkInput: compiled.checkInput };
  await publish(deps, childStart(record, child, workflow, traceparent));
}

async function finish(deps: DispatchDeps, record: ExecutionRecord, end: Finish): Promise<void> {
  const { js } = deps;
  const answer = parentAnswer(record, end);
  if (answer) await publish(deps, answer);
  // Retention: the record and its history go once the retention time has passed, on retention's
  // own stream (topology.ts), not among the timers. One removal per end: an execution retried and
  // ended again gets another (the first, when due, finds a later end and goes), so no removal
  // holds a place in the consumer's window past its own due time.
  const endedAt = record.endedAt ?? Date.now();
  await armRemoval(js, record.id, endedAt, endedAt + deps.retentionMs);
  // The wake-ups it left armed would stay parked until due and then change nothing.
  if (end.staleWakes !== undefined) await removeStaleWakes(deps, record.id, end.staleWakes, end.wakesDue);
}

/**
 * Arms the removal of an execution that ended at `endedAt`, due at `due` (its token names both: a
 * removal put off, see the orchestrator's `expire`, is a message of its own).
 */
export async function armRemoval(
  js: JetStreamClient,
  execution: string,
  endedAt: number,
  due: number,
  { putOff = false } = {},
): Promise<void> {
  const expire: TimerMessage = {
    execution,
    timer: expireEvent,
    token: putOff ? `${execution}.expire.${endedAt}.${due}` : `${execution}.expire.${endedAt}`,
    due,
    event: { type: expireEvent, endedAt } as TimerMessage["event"],
  };
  await retryNats(() =>
    js.publish(retentionSubject(execution), JSON.stringify(expire), { msgID: expire.token }),
  );
}

/**
 * Removes the messages of the wake-ups an ended execution left armed: parked until due (an
 * attempt timeout minutes away, a deadline a day away), each would hold a place among the
 * timers' unacknowledged messages and then change nothing. They are taken from the newest back,
 * by sequence (deleting a message frees its place at once; purging by subject stalled other
 * consumers on nats-server 2.9.10), and only while the newest is one of `tokens`: a wake-up armed
 * since (the execution retried) has another token and stays, with whatever is behind it. Best
 * effort: a wake-up left behind fires later and changes nothing.
 */
async function removeStaleWakes(
  deps: DispatchDeps,
  execution: string,
  tokens: string[],
  dues: Record<string, number> | undefined,
): Promise<void> {
  const stale = new Set(tokens);
  try {
    const jsm = await deps.js.jetstreamManager(false);
    // One armed far ahead waits in the timer index: looked for there first, by its slot. (A
    // finish written before finishes named the dues knows of none there.)
    const far = Object.fromEntries(Object.entries(dues ?? {}).filter(([token]) => stale.has(token)));
    if (Object.keys(far).length > 0) {
      const notThere = new Set(await removeIndexedWakes(jsm, execution, far, deps.timerSlotMs));
      for (const token of Object.keys(far)) if (!notThere.has(token)) stale.delete(token);
      if (stale.size === 0) return;
    }
    // Oldest first, by subject (nats-server answers "next on this subject from here" from its
    // subject index); then deleted from the newest back.
    const armed: { seq: number; token: unknown }[] = [];
    for (let seq = 1; ;) {
      // Parked wake-ups only (fired ones are acknowledged, so gone): a handful. Past this many,
      // something else is going on; leave them all.
      if (armed.length >= 1_000) return;
      const message = await jsm.streams
        .getMessage(streams.timers, { next_by_subj: subjects.timers(execution), seq } as never)
        .catch((error: unknown) => {
          if (isGone(error)) return undefined;
          throw error;
        });
      if (message === undefined) break;
      armed.push({ seq: message.seq, token: message.json<Partial<TimerMessage>>().token });
      seq = message.seq + 1;
    }
    for (const { seq, token } of armed.reverse()) {
      if (typeof token !== "string" || !stale.delete(token)) return;
      await jsm.streams.deleteMessage(streams.timers, seq, false);
    }
  } catch (error) {
    // One taken (fired) meanwhile: nothing more to remove.
    if (!isGone(error))
      deps.log?.info("could not remove an ended execution's wake-ups; they fire and change nothing", {
        execution,
        error: String(error),
      });
  }
}

/** A message (or the stream's answer for one) that is not there: "no message found", "not found". */
const isGone = (error: unknown) => isNotFound(error) || /no message found/i.test(String(error));

/** Whether a stream captures `subject` (asked of the JetStream API, which answers in an election too). */
async function isCaptured(js: JetStreamClient, subject: string): Promise<boolean> {
  const jsm = await js.jetstreamManager();
  try {
    await retryNats(() => jsm.streams.find(subject));
    return true;
  } catch (error) {
    if (/no stream matches subject/i.test(String(error))) return false;
    throw error;
  }
}

const publish = (deps: DispatchDeps, outgoing: OutgoingEvent) =>
  publishEvent(deps.js, deps.partitions, outgoing.execution, outgoing.event, outgoing.id);

/** Publishes an event to an execution, deduplicated by `id`. */
export async function publishEvent(
  js: JetStreamClient,
  partitions: number,
  execution: string,
  event: object,
  id: string,
): Promise<void> {
  const body = JSON.stringify({ at: Date.now(), ...event });
  await retryNats(() => js.publish(subjects.events(execution, partitions), body, { msgID: id }));
}
