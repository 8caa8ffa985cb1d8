/**
 * The one event shape every trigger source produces (CloudEvents attributes), and where it
 * travels: each source (GitHub webhook, schedule, queue, infra, http route) publishes a `TriggerEvent` to
 * `baton.triggers.<source>` on the stream BATON_TRIGGERS, with the JetStream message id
 * `<source>:<id>` so a redelivered event is dropped at the door; one matcher (matcher.ts) reads
 * the stream, finds the workflows whose triggers accept the event, and starts them.
 *
 * Every delivery that starts executions is recorded in the KV bucket `baton_deliveries`
 * (`<source>.<sha256 of id>` → `DeliveryRecord`), and an execution started by a trigger has an
 * id derived from the delivery and the workflow, so the same delivery can never start a second
 * execution of a workflow, whatever is redelivered or retried.
 */
import { createHash } from "node:crypto";
import type { Json } from "../workflow/definition.ts";

export const triggerSources = ["github", "schedule", "queue", "infra", "http"] as const;
export type TriggerSource = (typeof triggerSources)[number];

export interface TriggerEvent {
  /** Which kind of trigger produced it. */
  source: TriggerSource;
  /** GitHub: the event name (`push`, `pull_request`); infra: `node.joined`, ...; schedule: `tick`; queue: `message`; http: `request`. */
  type: string;
  /** Unique per source: the GitHub delivery id, the schedule's workflow + due time, the queue message's stream sequence, ... */
  id: string;
  /** ISO 8601. */
  time: string;
  /** GitHub: the repository's full name; queue: the message subject; schedule: the workflow name; infra: the node or function; http: `<METHOD> <path>`. */
  subject?: string;
  /** `$event` of the executions it starts. */
  data: Json;
  /** The span that received it (the webhook request), W3C: the executions it starts link to it. */
  traceparent?: string;
}

export const triggerStream = "BATON_TRIGGERS";
export const triggerSubject = (source: TriggerSource) => `baton.triggers.${source}`;
export const allTriggerSubjects = "baton.triggers.>";
export const deliveriesBucket = "baton_deliveries";

/** What the `$trigger` binding of a started execution holds. */
export function triggerAttributes(event: TriggerEvent): Json {
  return {
    source: event.source,
    type: event.type,
    id: event.id,
    time: event.time,
    ...(event.subject === undefined ? {} : { subject: event.subject }),
  };
}

export interface DeliveryRecord {
  source: TriggerSource;
  id: string;
  type: string;
  receivedAt: string;
  /** Executions it started, by workflow. */
  executions: { workflow: string; execution: string }[];
  /** Workflows whose trigger matched but refused the event's input, and why. */
  rejected?: { workflow: string; reason: string }[];
}

const digest = (text: string) => createHash("sha256").update(text).digest("hex");

/** The KV key of a delivery. */
export const deliveryKey = (source: TriggerSource, id: string) => `${source}.${digest(id)}`;

/**
 * The execution a delivery starts for a workflow: the same for every redelivery of the stored
 * event, and, like every execution id, sorting by time (`x<ms in base 36>…`).
 */
export const triggeredExecutionId = (event: Pick<TriggerEvent, "source" | "id" | "time">, workflow: string) =>
  `x${Date.parse(event.time).toString(36)}${digest(`${event.source}:${event.id}:${workflow}`).slice(0, 16)}`;
