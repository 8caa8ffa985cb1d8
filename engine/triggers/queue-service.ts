/**
 * `queue` triggers: each message on a queue subject becomes one TriggerEvent (`message`, id
 * `<stream>:<sequence>`), read through a durable JetStream consumer that every engine replica
 * shares, so a message published while no engine runs is handled once one is back.
 *
 * Which stream holds the messages: one that already captures the subject (the operator's own,
 * say) is used as it is; otherwise the subject joins BATON_EMITTED, the stream that captures the
 * `emit` subjects (emit-stream.ts). One Baton stream owning both kinds of subject means the two
 * never overlap, which JetStream would refuse, and a workflow's `emit` feeds another's `queue`
 * with no extra hop.
 *
 * The consumer of a subject (`queue_<hash of subject>`, filtered on it) starts at the time the
 * workflow that first wanted it was submitted, so nothing published since is lost to the time
 * an engine takes to notice. A message is acknowledged once its event is stored in
 * BATON_TRIGGERS; redelivered, it publishes the same event id, which JetStream and the matcher
 * drop. Input the workflow refuses is the matcher's to dead-letter (it sees the refusal).
 *
 * Consumers of subjects no workflow wants any more are stopped, not deleted: a workflow that
 * comes back finds the messages it missed.
 */
import { pullExpiresMs } from "../../sdk/nats-retry.ts";
import { createHash } from "node:crypto";
import {
  AckPolicy,
  DeliverPolicy,
  nanos,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  type KV,
} from "nats";
import { captureEmitSubjects, emittedStream } from "../nats/emit-stream.ts";
import { refuseSubject } from "../workflow/subject-guard.ts";
import { isNotFound } from "../nats/topology.ts";
import type { StoredWorkflow } from "../nats/workflow-store.ts";
import type { Logger } from "../orchestrator/orchestrator.ts";
import type { Json, WorkflowDefinition } from "../workflow/definition.ts";
import { publishTriggerEvent } from "./publish-trigger.ts";
import type { TriggerEvent } from "./trigger-event.ts";
import { watchWorkflows, type WorkflowWatch } from "./workflow-watch.ts";

export interface QueueServiceOptions {
  js: JetStreamClient;
  jsm: JetStreamManager;
  workflows: KV;
  log: Logger;
}

/** The subjects of a workflow's queue triggers. */
export function queueSubjectsOf(definition: WorkflowDefinition): string[] {
  return [
    ...new Set(
      (definition.triggers ?? []).flatMap((trigger) => ("queue" in trigger ? [trigger.queue.subject] : [])),
    ),
  ];
}

/** The durable consumer of a queue subject (consumer names cannot hold dots or wildcards). */
export const queueConsumer = (subject: string) =>
  `queue_${createHash("sha256").update(subject).digest("hex").slice(0, 16)}`;

/** The TriggerEvent of a queue message: JSON payloads parsed, anything else as text. */
export function queueEvent(message: JsMsg): TriggerEvent {
  const text = message.string();
  let data: Json;
  try {
    data = JSON.parse(text) as Json;
  } catch {
    data = text;
  }
  return {
    source: "queue",
    type: "message",
    id: `${message.info.stream}:${message.info.streamSequence}`,
    time: new Date(Math.floor(message.info.timestampNanos / 1_000_000)).toISOString(),
    subject: message.subject,
    data,
  };
}

interface Consuming {
  messages?: ConsumerMessages;
  stopped: boolean;
  done: Promise<void>;
}

const halt = (consuming: Consuming) => {
  consuming.stopped = true;
  consuming.messages?.stop();
};

export class QueueService {
  /** Wanted subjects, by workflow. */
  private readonly wanted = new Map<string, { subjects: string[]; since: string }>();
  private readonly consuming = new Map<string, Consuming>();
  private watch?: WorkflowWatch;
  private syncing: Promise<void> = Promise.resolve();
  private stopped = false;

  private constructor(private readonly options: QueueServiceOptions) {}

  static async start(options: QueueServiceOptions): Promise<QueueService> {
    const service = new QueueService(options);
    service.watch = await watchWorkflows(
      options.workflows,
      (name, workflow) => service.follow(name, workflow),
      options.log,
    );
    await service.syncing;
    return service;
  }

  /** The subjects consumed now (tests, diagnostics). */
  subjects(): string[] {
    return [...this.consuming.keys()].sort();
  }

  /** Resolves once what the workflows seen so far want is being consumed. */
  settled(): Promise<void> {
    return this.syncing;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.watch?.stop();
    await this.syncing;
    for (const consumer of this.consuming.values()) halt(consumer);
    await Promise.all([...this.consuming.values()].map((consumer) => consumer.done));
    this.consuming.clear();
  }

  private follow(name: string, workflow: StoredWorkflow | undefined): void {
    const subjects = (workflow ? queueSubjectsOf(workflow.definition) : []).filter((subject) => {
      // The validator refuses these; a workflow stored before it did must not reach them either
      // (a consumer on BATON_EVENTS would take the engine's own events).
      const refused = refuseSubject(subject, { wildcards: true });
      if (refused)
        this.options.log.error("queue trigger subject refused", { workflow: name, subject, refused });
      return !refused;
    });
    if (subjects.length === 0) this.wanted.delete(name);
    else this.wanted.set(name, { subjects, since: this.wanted.get(name)?.since ?? workflow!.updatedAt });
    this.syncing = this.syncing
      .then(() => this.sync())
      .catch((error: unknown) =>
        this.options.log.error("could not consume a queue subject", { error: String(error) }),
      );
  }

  private async sync(): Promise<void> {
    if (this.stopped) return;
    const since = new Map<string, string>();
    for (const { subjects, since: at } of this.wanted.values())
      for (const subject of subjects)
        if (!since.has(subject) || at < since.get(subject)!) since.set(subject, at);
    for (const [subject, consumer] of [...this.consuming]) {
      if (since.has(subject)) continue;
      halt(consumer);
      await consumer.done;
      this.consuming.delete(subject);
    }
    for (const [subject, at] of since) {
      if (this.consuming.has(subject)) continue;
      const stream = await this.streamFor(subject);
      await this.ensureConsumer(stream, subject, at);
      this.consuming.set(subject, this.consume(stream, subject));
    }
  }

  /** The stream that captures `subject`, adding it to BATON_EMITTED when none does. */
  private async streamFor(subject: string): Promise<string> {
    const { jsm } = this.options;
    try {
      return await jsm.streams.find(subject);
    } catch (error) {
      if (!/no stream matches subject/i.test(String(error)) && !isNotFound(error)) throw error;
    }
    await captureEmitSubjects(jsm, [subject]);
    return emittedStream;
  }

  private async ensureConsumer(stream: string, subject: string, since: string): Promise<void> {
    const { jsm } = this.options;
    const durable = queueConsumer(subject);
    try {
      await jsm.consumers.info(stream, durable);
      return;
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
    try {
      await jsm.consumers.add(stream, {
        durable_name: durable,
        filter_subject: subject,
        ack_policy: AckPolicy.Explicit,
        // Short, so the messages a killed replica held come back to another one within seconds.
        ack_wait: nanos(5_000),
        max_deliver: -1,
        deliver_policy: DeliverPolicy.StartTime,
        opt_start_time: since,
      });
    } catch (raced) {
      // Another replica created it first.
      if (!/already in use|exists/i.test(String(raced))) throw raced;
    }
  }

  /**
   * Reads a subject's consumer until stopped; a read that ends on its own (the consumer
   * recreated, the connection lost for long) starts again, so a subject is never left unread.
   */
  private consume(stream: string, subject: string): Consuming {
    const consuming: Consuming = { stopped: false, done: Promise.resolve() };
    consuming.done = (async () => {
      while (!consuming.stopped && !this.stopped) {
        try {
          const consumer = await this.options.js.consumers.get(stream, queueConsumer(subject));
          consuming.messages = await consumer.consume({ max_messages: 64, expires: pullExpiresMs });
          if (consuming.stopped) consuming.messages.stop();
          for await (const message of consuming.messages) await this.handOver(subject, message);
        } catch (error) {
          this.options.log.warn("reading a queue subject failed; reading again", {
            subject,
            error: String(error),
          });
        }
        if (!consuming.stopped && !this.stopped) await new Promise((resolve) => setTimeout(resolve, 1_000));
      }
    })();
    return consuming;
  }

  private async handOver(subject: string, message: JsMsg): Promise<void> {
    try {
      await publishTriggerEvent(this.options.js, queueEvent(message));
      message.ack();
    } catch (error) {
      this.options.log.warn("could not hand a queue message to the matcher; it comes back", {
        subject,
        error: String(error),
      });
      message.nak(1_000);
    }
  }
}
