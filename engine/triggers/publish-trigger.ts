/**
 * How a trigger source hands an event to the matcher: publish it on `baton.triggers.<source>`,
 * captured by the stream BATON_TRIGGERS (created here on first use, idempotently), with the
 * JetStream message id `<source>:<id>` so a redelivery within the duplicate window is dropped at
 * the door. A redelivery after the window still starts nothing new: the matcher derives the
 * execution ids from the delivery (trigger-event.ts).
 */
import {
  RetentionPolicy,
  StorageType,
  nanos,
  type JetStreamClient,
  type JetStreamManager,
  type PubAck,
} from "nats";
import { duplicateWindowMs, ensureStream } from "../nats/topology.ts";
import {
  allTriggerSubjects,
  triggerSources,
  triggerStream,
  triggerSubject,
  type TriggerEvent,
} from "./trigger-event.ts";
import { activeTraceparent } from "../telemetry/tracing.ts";

/** How long BATON_TRIGGERS keeps an event (limits retention): long enough to inspect and replay. */
export const triggerRetentionMs = 7 * 24 * 60 * 60_000;

const ensured = new WeakMap<object, Promise<void>>();

/** Creates BATON_TRIGGERS if it is missing; leaves it as it is otherwise. */
export function ensureTriggerStream(jsm: JetStreamManager): Promise<void> {
  let pending = ensured.get(jsm);
  if (!pending) {
    pending = createTriggerStream(jsm).catch((error: unknown) => {
      ensured.delete(jsm);
      throw error;
    });
    ensured.set(jsm, pending);
  }
  return pending;
}

async function createTriggerStream(jsm: JetStreamManager): Promise<void> {
  // With the configured replica count (BATON_NATS_REPLICAS), brought to it when it exists.
  await ensureStream(jsm, {
    name: triggerStream,
    subjects: [allTriggerSubjects],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    max_age: nanos(triggerRetentionMs),
    duplicate_window: nanos(duplicateWindowMs),
  });
}

const managers = new WeakMap<JetStreamClient, Promise<JetStreamManager>>();

/** The JetStream message id of an event: a redelivery within the duplicate window is dropped. */
export const triggerMessageId = (event: Pick<TriggerEvent, "source" | "id">) => `${event.source}:${event.id}`;

export interface PublishTriggerOptions {
  /** Overrides the message id (tests: a replay after the duplicate window). */
  msgID?: string;
}

/**
 * Publishes a trigger event for the matcher. Resolves once JetStream has stored it (or dropped it
 * as a duplicate: `ack.duplicate`).
 */
export async function publishTriggerEvent(
  js: JetStreamClient,
  event: TriggerEvent,
  options: PublishTriggerOptions = {},
): Promise<PubAck> {
  if (!(triggerSources as readonly string[]).includes(event.source))
    throw new TypeError(`unknown trigger source "${event.source}"`);
  if (!event.id) throw new TypeError("a trigger event needs an id");
  if (Number.isNaN(Date.parse(event.time)))
    throw new TypeError(`trigger event time "${event.time}" is not a date`);
  let jsm = managers.get(js);
  if (!jsm) {
    jsm = js.jetstreamManager();
    managers.set(js, jsm);
  }
  await ensureTriggerStream(await jsm);
  // Published while a request is being served: the executions it starts link to that request.
  const traceparent = event.traceparent ?? activeTraceparent();
  return js.publish(
    triggerSubject(event.source),
    JSON.stringify(traceparent ? { ...event, traceparent } : event),
    {
      msgID: options.msgID ?? triggerMessageId(event),
    },
  );
}
