/**
 * Prometheus metrics (`GET /metrics`), with prom-client. Execution, step, attempt and retry
 * counts are read off the history the engines write: a core NATS subscription to
 * `baton.history.>` sees every history message as it is published, whichever engine wrote it,
 * at the cost of one message per write. Like every Prometheus counter they count from the
 * moment this process started (and miss what is written while it is disconnected); every API
 * replica counts every execution, so aggregate with `max`, not `sum`. Queue depth is asked of
 * JetStream at each scrape: one consumer info per function.
 *
 * Only top-level executions are counted as executions (item and child executions, with `_` in
 * their ids, are parts of another); their steps and attempts are counted like any.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { JetStreamManager, NatsConnection, Subscription } from "nats";
import { lanes, streams, subjects, taskConsumer } from "../../sdk/protocol.ts";
import type { HistoryEntry } from "../orchestrator/history.ts";

const endings: Record<string, string> = {
  ExecutionSucceeded: "succeeded",
  ExecutionFailed: "failed",
  ExecutionCancelled: "cancelled",
  ExecutionTimedOut: "timed_out",
};

/** Steps scheduled and not yet ended, whose start time is remembered for the latency histogram. */
const maxOpenSteps = 100_000;
const historyPrefix = subjects.history("");

export interface MetricsOptions {
  /** Also export the process's own metrics (CPU, memory, event loop): for a server process, not for tests. */
  processMetrics?: boolean;
}

export class ApiMetrics {
  readonly registry = new Registry();
  private readonly subscription: Subscription;
  private readonly openSteps = new Map<string, number>();
  private readonly started: Counter;
  private readonly finished: Counter<"status">;
  private readonly retried: Counter;
  private readonly stepSeconds: Histogram<"status">;
  private readonly attemptsStarted: Counter;
  private readonly attemptsFinished: Counter<"outcome">;
  private readonly retries: Counter;

  constructor(nc: NatsConnection, jsm: JetStreamManager, options: MetricsOptions = {}) {
    const registers = [this.registry];
    this.started = new Counter({
      name: "baton_executions_started_total",
      help: "Top-level executions started.",
      registers,
    });
    this.finished = new Counter({
      name: "baton_executions_finished_total",
      help: "Top-level executions that ended, by status.",
      labelNames: ["status"],
      registers,
    });
    this.retried = new Counter({
      name: "baton_executions_retried_total",
      help: "Failed executions re-run from the step that failed.",
      registers,
    });
    this.stepSeconds = new Histogram({
      name: "baton_step_duration_seconds",
      help: "From a step being scheduled to its outcome, retries included, by outcome.",
      labelNames: ["status"],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800],
      registers,
    });
    this.attemptsStarted = new Counter({
      name: "baton_attempts_started_total",
      help: "Step attempts a worker started.",
      registers,
    });
    this.attemptsFinished = new Counter({
      name: "baton_attempts_finished_total",
      help: "Step attempts that ended, by outcome.",
      labelNames: ["outcome"],
      registers,
    });
    this.retries = new Counter({
      name: "baton_retries_total",
      help: "Retries scheduled by retry policies.",
      registers,
    });
    // One JetStream listing of the functions' consumers per scrape serves both gauges: prom-client
    // collects the metrics of a scrape concurrently, so they share the listing under way.
    let listing: Promise<QueueState[]> | undefined;
    const readQueues = () =>
      (listing ??= listQueues(jsm).finally(() => {
        listing = undefined;
      }));
    new Gauge({
      name: "baton_queue_depth",
      help: "Tasks waiting for a worker, by function and lane.",
      labelNames: ["function", "lane"],
      registers,
      async collect() {
        this.reset();
        for (const queue of await readQueues()) this.set(queue.labels, queue.pending);
      },
    });
    new Gauge({
      name: "baton_tasks_in_flight",
      help: "Tasks a worker holds and has not finished, by function and lane.",
      labelNames: ["function", "lane"],
      registers,
      async collect() {
        this.reset();
        for (const queue of await readQueues()) this.set(queue.labels, queue.inFlight);
      },
    });
    if (options.processMetrics) collectDefaultMetrics({ register: this.registry });
    this.subscription = nc.subscribe(subjects.allHistory, {
      callback: (error, message) => {
        if (error) return;
        let entries: unknown;
        try {
          entries = message.json();
        } catch {
          return;
        }
        if (Array.isArray(entries))
          this.count(message.subject.slice(historyPrefix.length), entries as HistoryEntry[]);
      },
    });
  }

  /** Counts what one history write says happened to an execution. */
  count(execution: string, entries: readonly HistoryEntry[]): void {
    const isTopLevel = !execution.includes("_");
    for (const entry of entries) {
      switch (entry.type) {
        case "ExecutionStarted":
          if (isTopLevel) this.started.inc();
          break;
        case "ExecutionSucceeded":
        case "ExecutionFailed":
        case "ExecutionCancelled":
        case "ExecutionTimedOut":
          if (isTopLevel) this.finished.inc({ status: endings[entry.type] });
          break;
        case "ExecutionRetried":
          this.retried.inc();
          break;
        case "StepScheduled":
          this.openSteps.set(`${execution}/${entry.step}`, Date.parse(entry.at));
          if (this.openSteps.size > maxOpenSteps) this.openSteps.delete(this.openSteps.keys().next().value!);
          break;
        case "StepSucceeded":
        case "StepFailed": {
          const key = `${execution}/${entry.step}`;
          const since = this.openSteps.get(key);
          this.openSteps.delete(key);
          if (since !== undefined)
            this.stepSeconds.observe(
              { status: entry.type === "StepSucceeded" ? "succeeded" : "failed" },
              Math.max(0, Date.parse(entry.at) - since) / 1_000,
            );
          break;
        }
        case "StepSkipped":
          this.openSteps.delete(`${execution}/${entry.step}`);
          break;
        case "AttemptStarted":
          this.attemptsStarted.inc();
          break;
        case "AttemptSucceeded":
          this.attemptsFinished.inc({ outcome: "succeeded" });
          break;
        case "AttemptFailed":
          this.attemptsFinished.inc({ outcome: "failed" });
          break;
        case "RetryScheduled":
          this.retries.inc();
          break;
        default:
          break;
      }
    }
  }

  async render(): Promise<{ contentType: string; text: string }> {
    return { contentType: this.registry.contentType, text: await this.registry.metrics() };
  }

  close(): void {
    this.subscription.unsubscribe();
    this.registry.clear();
  }
}

interface QueueState {
  labels: { function: string; lane: string };
  pending: number;
  inFlight: number;
}

/** Each function's task consumer; empty when NATS is away (the gauges stay empty, and /readyz says why). */
async function listQueues(jsm: JetStreamManager): Promise<QueueState[]> {
  const queues: QueueState[] = [];
  try {
    for await (const info of jsm.consumers.list(streams.tasks)) {
      const labels = functionOfConsumer(info.name);
      if (labels) queues.push({ labels, pending: info.num_pending, inFlight: info.num_ack_pending });
    }
  } catch {
    return [];
  }
  return queues;
}

/** `fn_<lane>_<function with . as ~>` → its function and lane; other consumers are not functions'. */
function functionOfConsumer(name: string): { function: string; lane: string } | undefined {
  for (const lane of lanes) {
    const prefix = taskConsumer(lane, "");
    if (name.startsWith(prefix)) return { function: name.slice(prefix.length).replaceAll("~", "."), lane };
  }
  return undefined;
}
