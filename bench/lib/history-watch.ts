/**
 * Watching executions from the outside without adding load: one core-NATS subscription on
 * `baton.history.>`. JetStream delivers a stream's messages to plain subscribers of its subjects
 * too, so every history write the engine makes (one message per record write) is seen as it
 * happens, with no consumer to create and no record to read back. The engine publishes history
 * right after the record write it belongs to, so "seen in history" trails "persisted" by one publish.
 */
import type { NatsConnection, Subscription } from "nats";
import { subjects } from "../../sdk/protocol.ts";
import { now } from "./stats.ts";

export type EndStatus = "succeeded" | "failed" | "cancelled";

export interface End {
  readonly status: EndStatus;
  /** When the watch saw it (`now()`). */
  readonly at: number;
}

/** Called for every history message: the execution id, the message text and when it arrived. */
export type HistoryListener = (execution: string, text: string, at: number) => void;

const endPattern = /"type":"Execution(Succeeded|Failed|Cancelled)"/;
const endStatuses = { Succeeded: "succeeded", Failed: "failed", Cancelled: "cancelled" } as const;

export class HistoryWatch {
  /** History records of these types seen so far, over every execution (map items included). */
  readonly counts = { attemptsSucceeded: 0, executionsEnded: 0 };
  private readonly waiters = new Map<string, (end: End) => void>();
  private readonly listeners = new Set<HistoryListener>();
  private readonly prefix = subjects.history("");
  private readonly decoder = new TextDecoder();
  private readonly subscription: Subscription;

  private constructor(nc: NatsConnection) {
    this.subscription = nc.subscribe(subjects.allHistory, {
      callback: (error, message) => {
        if (error) return;
        this.receive(message.subject.slice(this.prefix.length), this.decoder.decode(message.data));
      },
    });
  }

  /** Subscribes, and resolves once the server has the subscription (nothing written after is missed). */
  static async start(nc: NatsConnection): Promise<HistoryWatch> {
    const watch = new HistoryWatch(nc);
    await nc.flush();
    return watch;
  }

  /**
   * Resolves when `execution` ends. Call it before starting the execution: an end seen before
   * the call is not remembered (remembering every end would grow without bound).
   */
  expectEnd(execution: string): Promise<End> {
    return new Promise((resolve) => this.waiters.set(execution, resolve));
  }

  /** Stops waiting for an execution's end (after a timeout). */
  forget(execution: string): void {
    this.waiters.delete(execution);
  }

  /** Adds a listener; returns the function that removes it. */
  listen(listener: HistoryListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  stop(): void {
    this.subscription.unsubscribe();
    this.waiters.clear();
    this.listeners.clear();
  }

  private receive(execution: string, text: string): void {
    const at = now();
    this.counts.attemptsSucceeded += occurrences(text, '"type":"AttemptSucceeded"');
    const end = endPattern.exec(text);
    if (end) {
      this.counts.executionsEnded += 1;
      const waiter = this.waiters.get(execution);
      if (waiter) {
        this.waiters.delete(execution);
        waiter({ status: endStatuses[end[1] as keyof typeof endStatuses], at });
      }
    }
    for (const listener of this.listeners) listener(execution, text, at);
  }
}

function occurrences(text: string, needle: string): number {
  let count = 0;
  for (let at = text.indexOf(needle); at !== -1; at = text.indexOf(needle, at + needle.length)) count++;
  return count;
}
