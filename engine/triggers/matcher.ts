/**
 * From trigger events to executions. `Triggers` holds the one piece of code that turns an event
 * into starts (`process`): find the workflows whose triggers accept it, evaluate each trigger's
 * `when` and `input` with `$event` (the data) and `$trigger` (the event's attributes), check the
 * input against the workflow, start the execution with the id derived from the delivery and the
 * workflow, and record the delivery in `baton_deliveries`.
 *
 * Two callers: the matcher (`TriggerMatcher`, a durable consumer on BATON_TRIGGERS shared by every
 * engine replica) and the HTTP routes that receive events (`accept`: publish to the stream, then
 * process in the request, so the answer can name the executions; the matcher meets the same
 * event later and finds its delivery recorded).
 *
 * A delivery already recorded starts nothing: its record is the answer. Two processes working on
 * one delivery at once start the same derived ids, which JetStream and the execution record's
 * compare-and-set make one execution each, and merge their records.
 */
import { pullExpiresMs } from "../../sdk/nats-retry.ts";
import { natsReplicas, openBucket } from "../../sdk/replication.ts";
import {
  AckPolicy,
  DeliverPolicy,
  StorageType,
  nanos,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  type KV,
  type NatsConnection,
} from "nats";
import { buckets } from "../../sdk/protocol.ts";
import { subjectCovers } from "../nats/emit-stream.ts";
import { ensureConsumer, isNotFound } from "../nats/topology.ts";
import { InputInvalidError, WorkflowNotFoundError, type Executions } from "../orchestrator/executions.ts";
import type { Json, Trigger } from "../workflow/definition.ts";
import { evaluateCondition, evaluateTemplate, type Bindings } from "../workflow/expressions.ts";
import { routeKeyOf } from "./http-routes.ts";
import { ensureTriggerStream, publishTriggerEvent } from "./publish-trigger.ts";
import {
  allTriggerSubjects,
  deliveriesBucket,
  deliveryKey,
  triggerAttributes,
  triggerSources,
  triggerStream,
  triggeredExecutionId,
  type DeliveryRecord,
  type TriggerEvent,
  type TriggerSource,
} from "./trigger-event.ts";
import { TriggerRegistry, type ArmedWorkflow } from "./trigger-registry.ts";

/** The durable consumer every engine replica shares: each event goes to one of them. */
export const matcherConsumer = "engine_triggers";
/** How long deliveries are remembered (the bucket's TTL). */
export const deliveryRetentionMs = 30 * 24 * 60 * 60_000;
/** Where a queue message whose input a workflow refused is put, with the reason. */
export const deadLetterSubject = (subject: string) => `baton.deadletter.${subject}`;

// Short, so the events a killed replica held come back to another one within seconds (redeliveries start nothing twice).
const matcherAckWaitMs = 5_000;
const retryDelayMs = 1_000;

export interface TriggerLogger {
  info(message: string, fields?: object): void;
  warn(message: string, fields?: object): void;
  error(message: string, fields?: object): void;
}

/** What one workflow makes of an event: an input to start with, or a reason to refuse it. */
export type Match = { workflow: string; input: Json } | { workflow: string; rejected: string };

/** Whether a trigger's kind and filters (everything but `when`) accept the event. */
export function triggerAccepts(trigger: Trigger, event: TriggerEvent, workflow: string): boolean {
  if ("github" in trigger) {
    if (event.source !== "github" || !trigger.github.events.includes(event.type)) return false;
    return trigger.github.repository === undefined || trigger.github.repository === repositoryOf(event.data);
  }
  if ("queue" in trigger)
    return (
      event.source === "queue" &&
      event.subject !== undefined &&
      subjectCovers(trigger.queue.subject, event.subject)
    );
  if ("infra" in trigger) return event.source === "infra" && trigger.infra.events.includes(event.type);
  if ("schedule" in trigger) return event.source === "schedule" && event.subject === workflow;
  if ("http" in trigger) return event.source === "http" && event.subject === routeKeyOf(trigger);
  return false;
}

const fieldOf = (data: Json, field: string): Json | undefined =>
  data !== null && typeof data === "object" && !Array.isArray(data) ? data[field] : undefined;

/** `repository.full_name` of a GitHub payload. */
export function repositoryOf(data: Json): string | undefined {
  const repository = fieldOf(data, "repository");
  const name = repository === undefined ? undefined : fieldOf(repository, "full_name");
  return typeof name === "string" ? name : undefined;
}

const settingsOf = (trigger: Trigger): { when?: string; input?: Json } =>
  "github" in trigger
    ? trigger.github
    : "queue" in trigger
      ? trigger.queue
      : "infra" in trigger
        ? trigger.infra
        : "http" in trigger
          ? trigger.http
          : trigger.schedule;

/** Without an `input` template: the event's data, or for an http route the request's body. */
function defaultInputOf(trigger: Trigger, event: TriggerEvent): Json {
  if (!("http" in trigger)) return event.data;
  const request = fieldOf(event.data, "data");
  return (request === undefined ? undefined : fieldOf(request, "body")) ?? null;
}

/**
 * For each workflow, the first of its triggers that accepts the event and whose `when` holds:
 * the input its `input` template makes of the event (default: the event's data). A `when` or
 * `input` that fails to evaluate is a rejection. One match per workflow at most: a delivery starts
 * one execution of a workflow.
 */
export function matchTriggerEvent(workflows: ArmedWorkflow[], event: TriggerEvent): Match[] {
  const bindings: Bindings = { event: event.data, trigger: triggerAttributes(event) };
  const now = Date.parse(event.time);
  const options = { now: Number.isNaN(now) ? Date.now() : now, seed: `${event.source}:${event.id}` };
  const matches: Match[] = [];
  for (const { workflow, triggers } of [...workflows].sort((a, b) => a.workflow.localeCompare(b.workflow))) {
    for (const trigger of triggers) {
      if (!triggerAccepts(trigger, event, workflow)) continue;
      const { when, input } = settingsOf(trigger);
      try {
        if (when !== undefined && !evaluateCondition(when, bindings, options)) continue;
        matches.push({
          workflow,
          input:
            input === undefined ? defaultInputOf(trigger, event) : evaluateTemplate(input, bindings, options),
        });
      } catch (error) {
        matches.push({ workflow, rejected: `trigger expression failed: ${(error as Error).message}` });
      }
      break;
    }
  }
  return matches;
}

/** What processing an event gave: its delivery record, and whether it had been recorded before. */
export interface Processed {
  record: DeliveryRecord;
  /** The delivery had been seen before: nothing was started, the record is the first one's. */
  replayed: boolean;
}

/** The trigger plane of one process: registry, deliveries, and the code that starts executions. */
export class Triggers {
  private constructor(
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly executions: Executions,
    readonly registry: TriggerRegistry,
    readonly deliveries: KV,
    private readonly log?: TriggerLogger,
  ) {}

  static async open(executions: Executions, log?: TriggerLogger): Promise<Triggers> {
    const nc = executions.connection;
    const js = nc.jetstream();
    const jsm = await nc.jetstreamManager();
    await ensureTriggerStream(jsm);
    const workflows = await openBucket(js, buckets.workflows, { history: 1, storage: StorageType.File });
    const deliveries = await openBucket(js, deliveriesBucket, {
      history: 1,
      storage: StorageType.File,
      ttl: deliveryRetentionMs,
    });
    const registry = await TriggerRegistry.open(workflows, log);
    return new Triggers(nc, js, jsm, executions, registry, deliveries, log);
  }

  get connection(): NatsConnection {
    return this.nc;
  }

  close(): void {
    this.registry.stop();
  }

  /** The record of a delivery, if it has been seen. */
  async delivery(source: TriggerSource, id: string): Promise<DeliveryRecord | undefined> {
    const entry = await this.deliveries.get(deliveryKey(source, id));
    return entry && entry.operation === "PUT" ? entry.json<DeliveryRecord>() : undefined;
  }

  /**
   * Receives an event from outside (webhook, `POST /v1/events`): a delivery recorded before is
   * answered with its record; otherwise the event is stored on BATON_TRIGGERS (a copy already
   * there within the duplicate window wins: its time derives the ids) and processed at once.
   */
  async accept(event: TriggerEvent): Promise<Processed> {
    const known = await this.delivery(event.source, event.id);
    if (known) return { record: known, replayed: true };
    const ack = await publishTriggerEvent(this.js, event);
    let stored = event;
    if (ack.duplicate) {
      try {
        stored = (await this.jsm.streams.getMessage(triggerStream, { seq: ack.seq })).json<TriggerEvent>();
      } catch (error) {
        if (!isNotFound(error)) throw error;
      }
    }
    return this.process(stored);
  }

  /** Starts what an event should start (once per delivery) and records the delivery. */
  async process(event: TriggerEvent): Promise<Processed> {
    const known = await this.delivery(event.source, event.id);
    if (known) return { record: known, replayed: true };
    await this.registry.upToDate();
    const record: DeliveryRecord = {
      source: event.source,
      id: event.id,
      type: event.type,
      receivedAt: event.time,
      executions: [],
    };
    const rejected: { workflow: string; reason: string }[] = [];
    for (const match of matchTriggerEvent(this.registry.workflows(), event)) {
      if ("rejected" in match) {
        rejected.push({ workflow: match.workflow, reason: match.rejected });
        continue;
      }
      const id = triggeredExecutionId(event, match.workflow);
      try {
        await this.executions.start(match.workflow, match.input, {
          id,
          event: event.data,
          trigger: triggerAttributes(event),
          ...(event.traceparent ? { links: [event.traceparent] } : {}),
        });
        record.executions.push({ workflow: match.workflow, execution: id });
      } catch (error) {
        if (error instanceof InputInvalidError)
          rejected.push({ workflow: match.workflow, reason: error.message });
        else if (/MAX_PAYLOAD|maximum payload/i.test(String((error as { code?: string }).code ?? error)))
          rejected.push({
            workflow: match.workflow,
            reason: "the execution's start (input and event) is larger than NATS takes (max_payload)",
          });
        // Deleted between the match and the start: it no longer takes events.
        else if (!(error instanceof WorkflowNotFoundError)) throw error;
      }
    }
    if (rejected.length > 0) {
      record.rejected = rejected;
      this.log?.warn("trigger event rejected", { source: event.source, id: event.id, rejected });
      // A dead letter refused again is not dead-lettered again (a queue trigger on `>` would loop).
      if (
        event.source === "queue" &&
        event.subject !== undefined &&
        !event.subject.startsWith(deadLetterSubject(""))
      )
        this.deadLetter(event, rejected);
    }
    return { record: await this.record(record), replayed: false };
  }

  /** Rejected queue messages go to `baton.deadletter.<subject>`, with the reasons. */
  private deadLetter(event: TriggerEvent, rejected: { workflow: string; reason: string }[]): void {
    this.nc.publish(deadLetterSubject(event.subject!), JSON.stringify({ event, rejected }));
  }

  /** Creates the delivery's record, or merges into the one another process wrote. */
  private async record(record: DeliveryRecord): Promise<DeliveryRecord> {
    const key = deliveryKey(record.source, record.id);
    for (;;) {
      const entry = await this.deliveries.get(key);
      try {
        if (!entry || entry.operation !== "PUT") {
          if (entry) await this.deliveries.update(key, JSON.stringify(record), entry.revision);
          else await this.deliveries.create(key, JSON.stringify(record));
          return record;
        }
        const merged = mergeRecords(entry.json<DeliveryRecord>(), record);
        await this.deliveries.update(key, JSON.stringify(merged), entry.revision);
        return merged;
      } catch (error) {
        if (!/wrong last sequence|key exists/i.test(String(error))) throw error;
      }
    }
  }
}

function mergeRecords(first: DeliveryRecord, second: DeliveryRecord): DeliveryRecord {
  const executions = [...first.executions];
  for (const started of second.executions)
    if (!executions.some((known) => known.execution === started.execution)) executions.push(started);
  const rejected = [...(first.rejected ?? [])];
  for (const refusal of second.rejected ?? [])
    if (!rejected.some((known) => known.workflow === refusal.workflow)) rejected.push(refusal);
  return { ...first, executions, ...(rejected.length === 0 ? {} : { rejected }) };
}

const isTriggerEvent = (value: unknown): value is TriggerEvent => {
  const event = value as Partial<TriggerEvent> | null;
  return (
    typeof event === "object" &&
    event !== null &&
    (triggerSources as readonly unknown[]).includes(event.source) &&
    typeof event.type === "string" &&
    typeof event.id === "string" &&
    typeof event.time === "string" &&
    "data" in event
  );
};

/** The engine side: a durable consumer on BATON_TRIGGERS, shared by every replica. */
export class TriggerMatcher {
  private messages: ConsumerMessages | undefined;
  private loop: Promise<void> | undefined;

  constructor(
    private readonly triggers: Triggers,
    private readonly log: TriggerLogger,
  ) {}

  static async start(executions: Executions, log: TriggerLogger): Promise<TriggerMatcher> {
    const triggers = await Triggers.open(executions, log);
    const matcher = new TriggerMatcher(triggers, log);
    await matcher.start();
    return matcher;
  }

  get plane(): Triggers {
    return this.triggers;
  }

  async start(): Promise<void> {
    const nc = this.triggers.connection;
    const jsm = await nc.jetstreamManager();
    await ensureConsumer(jsm, triggerStream, natsReplicas(), {
      durable_name: matcherConsumer,
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(matcherAckWaitMs),
      deliver_policy: DeliverPolicy.All,
      filter_subject: allTriggerSubjects,
      max_deliver: -1,
      max_ack_pending: 1_000,
    });
    const consumer = await nc.jetstream().consumers.get(triggerStream, matcherConsumer);
    this.messages = await consumer.consume({ max_messages: 100, expires: pullExpiresMs });
    const messages = this.messages;
    this.loop = (async () => {
      for await (const message of messages) await this.handle(message);
    })();
  }

  private async handle(message: JsMsg): Promise<void> {
    let event: unknown;
    try {
      event = message.json();
    } catch {
      event = undefined;
    }
    if (!isTriggerEvent(event)) {
      this.log.warn("dropping a malformed trigger event", { subject: message.subject, seq: message.seq });
      message.term();
      return;
    }
    try {
      const { record, replayed } = await this.triggers.process(event);
      if (!replayed && record.executions.length > 0)
        this.log.info("trigger event started executions", {
          source: event.source,
          id: event.id,
          executions: record.executions.map((started) => started.execution),
        });
      message.ack();
    } catch (error) {
      this.log.error("could not process a trigger event", {
        source: event.source,
        id: event.id,
        error: String(error),
      });
      message.nak(retryDelayMs);
    }
  }

  async stop(): Promise<void> {
    this.messages?.stop();
    await this.loop?.catch(() => undefined);
    this.triggers.close();
  }
}
