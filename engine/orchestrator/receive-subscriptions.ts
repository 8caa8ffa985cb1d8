/**
 * `receive` on a NATS subject. Which executions wait on which subject is kept in the KV bucket
 * `baton_receives` (`<execution>.<step>` → subject), so it survives restarts; every engine
 * replica watches the bucket and listens on those subjects in one queue group, so each message
 * is forwarded once, as a `message` event, to every execution waiting for it.
 *
 * Messages are plain NATS messages: one published while no engine runs is not seen. (Queue
 * triggers, which need durability, read through JetStream consumers instead.)
 */
import type { JetStreamClient, KV, NatsConnection, Subscription } from "nats";
import { subjects } from "../../sdk/protocol.ts";
import { refuseSubject } from "../workflow/subject-guard.ts";
import { sweepMarkers } from "../nats/kv-erase.ts";

export const receiveQueueGroup = "baton-receive";

/** The delete marker of a finished receive is purged after an hour, once every replica has seen it. */
export const receiveMarkers = { ageMs: 3_600_000, everyMs: 900_000 };

export class ReceiveSubscriptions {
  /** subject → the waiting `<execution>.<step>` keys. */
  private readonly waiting = new Map<string, Set<string>>();
  private readonly subscriptions = new Map<string, Subscription>();
  private stopWatching: (() => void) | undefined;
  private sweeper: { stop(): void } | undefined;

  constructor(
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly kv: KV,
    /** How many partitions executions are shared in (an event's subject names its execution's). */
    private readonly partitions: number,
    private readonly markers = receiveMarkers,
  ) {}

  async add(execution: string, step: string, subject: string): Promise<void> {
    // The receive step refuses such subjects (SubjectRefused); this fences records written before it did.
    if (refuseSubject(subject)) return;
    await this.kv.put(`${execution}.${step}`, subject);
  }

  async remove(execution: string, step: string): Promise<void> {
    await this.kv.delete(`${execution}.${step}`);
  }

  async start(): Promise<void> {
    const watch = await this.kv.watch();
    this.stopWatching = () => watch.stop();
    this.sweeper = sweepMarkers(this.kv, this.markers, () => undefined);
    void (async () => {
      for await (const entry of watch) {
        if (entry.operation === "PUT") this.listen(entry.key, entry.string());
        else this.forget(entry.key);
      }
    })();
  }

  stop(): void {
    this.stopWatching?.();
    this.sweeper?.stop();
    for (const subscription of this.subscriptions.values()) subscription.unsubscribe();
    this.subscriptions.clear();
    this.waiting.clear();
  }

  private listen(key: string, subject: string) {
    if (refuseSubject(subject)) return;
    let keys = this.waiting.get(subject);
    if (!keys) {
      keys = new Set();
      this.waiting.set(subject, keys);
      this.subscriptions.set(
        subject,
        this.nc.subscribe(subject, {
          queue: receiveQueueGroup,
          callback: (_error, message) => {
            const data = decode(message.data);
            for (const waiting of this.waiting.get(subject) ?? []) {
              const execution = waiting.slice(0, waiting.lastIndexOf("."));
              void this.js
                .publish(
                  subjects.events(execution, this.partitions),
                  JSON.stringify({ type: "message", subject: message.subject, data, at: Date.now() }),
                )
                .catch(() => undefined);
            }
          },
        }),
      );
    }
    keys.add(key);
  }

  private forget(key: string) {
    for (const [subject, keys] of this.waiting) {
      if (!keys.delete(key) || keys.size > 0) continue;
      this.waiting.delete(subject);
      this.subscriptions.get(subject)?.unsubscribe();
      this.subscriptions.delete(subject);
    }
  }
}

/** A message body, parsed as JSON when it is JSON, else as text. */
function decode(data: Uint8Array): unknown {
  const text = Buffer.from(data).toString("utf8");
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}
