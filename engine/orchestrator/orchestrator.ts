/**
 * The orchestrator: reads events off BATON_EVENTS, timers off BATON_TIMERS and removals off
 * BATON_RETENTION, and applies each event to its execution (apply-event.ts) with the durability
 * rules of architecture.md:
 *
 * - the record is persisted with a compare-and-set on its KV revision before anything it
 *   produced leaves; on a conflict (another replica moved the execution) the batch is re-applied
 *   to the fresh record, and events it already holds are recognised by id and skipped;
 * - the commands ride in the record (its outbox); a process that finds an outbox it did not see
 *   sent sends it again, and receivers deduplicate, so a crash between the write and the
 *   publishes loses nothing;
 * - events are acknowledged only after all that, so a crash before it means redelivery.
 *
 * Within one process, an execution's events are applied one batch at a time: whatever arrived
 * while a batch was being persisted is applied together next, with one write (the join of a
 * large `map` is many answers and few writes). Several replicas share the consumers; the
 * compare-and-set keeps any two from both advancing an execution.
 */
import { pullExpiresMs } from "../../sdk/nats-retry.ts";
import { NatsError, type ConsumerMessages, type JsMsg, type NatsConnection } from "nats";
import { partitionOf, streams, subjects } from "../../sdk/protocol.ts";
import { defaultTimerSlotMs, type EngineConfig } from "../config.ts";
import { stepError } from "../errors.ts";
import { ExecutionStore, RevisionConflict, type StoredRecord } from "../nats/execution-store.ts";
import {
  engineConsumers,
  ensurePartitionConsumer,
  ensureTopology,
  partitionConsumer,
  eventAckWaitMs,
  poisonSubject,
  retentionStream,
  retentionWindow,
  type Topology,
} from "../nats/topology.ts";
import { WorkflowStore } from "../nats/workflow-store.ts";
import { eraseKeys } from "../nats/kv-erase.ts";
import { exportPlannedSpans, tracingEnabled } from "../telemetry/tracing.ts";
import { compileWorkflow, type CompiledWorkflow } from "../workflow/compile/compile-workflow.ts";
import { applyEvent, failExecution, startExecution, type Applied, type ApplyOptions } from "./apply-event.ts";
import { ServedFunctions } from "./served-functions.ts";
import {
  armRemoval,
  dispatchCommands,
  expireEvent,
  publishEvent,
  type DispatchDeps,
} from "./dispatch-commands.ts";
import { timerFired } from "./command-events.ts";
import { EffectLedger } from "./effect-ledger.ts";
import { checkEngineEvent, type EngineEvent, type StartEvent } from "./engine-events.ts";
import { crashPoint, crashPointArmed } from "./crash-points.ts";
import {
  appliedMemory,
  isEnded,
  takesEvent,
  type ExecutionRecord,
  type OutboxEntry,
} from "./execution-record.ts";
import type { HistoryEntry } from "./history.ts";
import { isExecutionId } from "./ids.ts";
import { ReceiveSubscriptions } from "./receive-subscriptions.ts";
import { checkTimer, TimerIndexPromoter } from "./timer-index.ts";
import { PartitionLeases } from "./partition-leases.ts";
import { itemResult, joinItems, joinsCompleted, resultsKey, withJoinResults } from "./map-join.ts";
import type { Json } from "../workflow/definition.ts";

/** Events are on `baton.events.p.<partition>.<execution>`, and a worker's reports on `….result`. */
const eventSubject = /^baton\.events\.p\.(\d+)\.([^.]+)(\.result)?$/;
/** What the engine takes on a worker's report subject. */
const workerEventTypes = new Set(["task.started", "task.succeeded", "task.failed"]);

export interface Logger {
  info(message: string, fields?: object): void;
  warn(message: string, fields?: object): void;
  error(message: string, fields?: object): void;
}

export const consoleLogger: Logger = {
  info: (message, fields) => console.log(JSON.stringify({ level: "info", message, ...fields })),
  warn: (message, fields) => console.warn(JSON.stringify({ level: "warn", message, ...fields })),
  error: (message, fields) => console.error(JSON.stringify({ level: "error", message, ...fields })),
};

interface Delivery {
  event: EngineEvent;
  id: string;
  message: JsMsg;
  /** When JetStream last heard from this engine about it (received, or "still working"). */
  touchedAt: number;
}

/**
 * An event whose application failed this many times (for a reason other than NATS being away or
 * a race) is poison: set aside on BATON_POISON, and its execution fails with `EventPoisoned`.
 */
const poisonAfterFailures = 5;
/** How long to wait before a failed batch is tried again. */
const retryDelayMs = 500;
/** Events applied in one write, at most: no more than a record remembers as applied. */
const maxBatch = appliedMemory;
/**
 * How long an event for an execution that does not exist (yet) is kept trying before it is
 * dropped: long enough for its start to survive a failover (a start held by a replica that died
 * comes back after the ack wait), short enough that events of an execution removed by retention go.
 */
const unknownExecutionPatienceMs = 60_000;

const hasOutbox = (record: ExecutionRecord) =>
  record.outbox.length > 0 || (record.outboxHistory?.length ?? 0) > 0;

/** NATS away or slow, a leader election, a race: worth trying again, never poison. */
const isTransient = (error: unknown): boolean =>
  error instanceof RevisionConflict ||
  error instanceof NatsError ||
  /timeout|no responders|503|connection|disconnect|wrong last sequence|stream not found/i.test(String(error));

class ExecutionNotYetStarted extends Error {
  override name = "ExecutionNotYetStarted";
}

export class Orchestrator {
  private readonly mailboxes = new Map<string, Delivery[]>();
  private readonly draining = new Map<string, Promise<void>>();
  /** Event id → how often applying it failed in this process (not counting NATS being away). */
  private readonly failures = new Map<string, number>();
  /** The batch each execution is persisting now. */
  private readonly inFlight = new Map<string, Delivery[]>();
  private keepAlive: NodeJS.Timeout | undefined;
  private readonly served: ServedFunctions;
  private readonly applyOptions: ApplyOptions;
  private readonly compiled = new Map<string, CompiledWorkflow>();
  /** Execution → the record revision whose outbox this process has sent. */
  private readonly sentOutbox = new Map<string, number>();
  private readonly consumers: ConsumerMessages[] = [];
  /** The loops reading the consumers: each ends once its message in hand is handled, after stop(). */
  private readonly reads: Promise<void>[] = [];
  private readonly store: ExecutionStore<ExecutionRecord>;
  readonly workflows: WorkflowStore;
  private readonly deps: DispatchDeps;
  private readonly receives: ReceiveSubscriptions;
  private readonly timerIndex: TimerIndexPromoter;
  private readonly leases: PartitionLeases;
  /** The reads of the partitions this engine holds. */
  private readonly partitionReads = new Map<
    number,
    { active: boolean; reading: Promise<void>; stop: () => void }
  >();
  private stopped = false;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly topology: Topology,
    private readonly config: EngineConfig,
    private readonly log: Logger,
  ) {
    this.store = new ExecutionStore(topology.executions, config.cacheSize, topology.executionIndex);
    this.workflows = new WorkflowStore(topology.workflows);
    this.receives = new ReceiveSubscriptions(nc, topology.js, topology.receives, topology.partitions);
    this.served = new ServedFunctions(nc);
    this.leases = new PartitionLeases(
      topology.engineState,
      config.engineId,
      topology.partitions,
      {
        acquire: (partition, takenOver) => this.acquirePartition(partition, takenOver),
        release: (partition) => this.releasePartition(partition),
      },
      log,
    );
    this.timerIndex = new TimerIndexPromoter(
      topology.js,
      topology.jsm,
      topology.engineState,
      config.timerSlotMs ?? defaultTimerSlotMs,
      log,
    );
    this.applyOptions = { unserved: (fn) => this.served.isUnserved(fn) };
    this.deps = {
      nc,
      js: topology.js,
      workflows: this.workflows,
      ledger: new EffectLedger(topology.effects),
      receives: this.receives,
      retentionMs: config.retentionMs,
      partitions: topology.partitions,
      engineState: topology.engineState,
      timerSlotMs: config.timerSlotMs ?? defaultTimerSlotMs,
      compiledFor: (name, revision) => this.compiledFor(name, revision),
      log,
    };
  }

  static async create(
    nc: NatsConnection,
    config: EngineConfig,
    log: Logger = consoleLogger,
  ): Promise<Orchestrator> {
    return new Orchestrator(
      nc,
      await ensureTopology(nc, config.natsReplicas, config.partitions, { eventConsumers: true }),
      config,
      log,
    );
  }

  async start(): Promise<void> {
    await this.receives.start();
    this.served.start();
    // start() resolves once every read is open (and this engine holds its first partitions), and
    // fails when one cannot be opened.
    const reads = [
      this.consume(streams.timers, engineConsumers.timers, 2_000, (message) => this.receiveTimer(message)),
      this.consume(retentionStream, engineConsumers.retention, retentionWindow, (message) =>
        this.receiveTimer(message, { retention: true }),
      ),
    ];
    await Promise.all(reads.map((read) => read.opened));
    if (this.stopped) return; // stopped while starting: take no partition
    await this.leases.start();
    this.timerIndex.start();
    // Events queued behind a write, or in a write that takes long (NATS slow or away), stay this
    // engine's: JetStream would otherwise hand them to another replica after the ack wait.
    if (this.stopped) return;
    this.keepAlive = setInterval(() => this.keepEventsAlive(), eventAckWaitMs / 3);
    this.keepAlive.unref();
  }

  /** Stops taking new work and lets the batches under way finish. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.keepAlive);
    this.served.stop();
    // Partitions are handed back once the batches under way in them are done: another engine
    // takes them at its next tick.
    const handingBack = this.leases.stop();
    const promoting = this.timerIndex.stop();
    for (const consumer of this.consumers) consumer.stop();
    this.receives.stop();
    await Promise.allSettled([...this.draining.values(), promoting, handingBack, ...this.reads]);
  }

  /**
   * This engine now holds a partition: it reads the partition's events, and holds their records
   * in memory as the authority (the compare-and-set stays the fence). What it had cached of the
   * partition's executions from an earlier hold may be behind another engine's writes, so it goes.
   */
  private async acquirePartition(partition: number, takenOver: boolean): Promise<void> {
    const { partitions } = this.topology;
    this.store.forgetWhere((execution) => partitionOf(execution, partitions) === partition);
    for (const execution of [...this.sentOutbox.keys()])
      if (partitionOf(execution, partitions) === partition) this.sentOutbox.delete(execution);
    // From an engine that died: what it was handed and never acknowledged comes at once, not
    // after the ack wait (deleting a work queue's consumer loses no message).
    await ensurePartitionConsumer(this.topology.jsm, partition, this.config.natsReplicas, {
      fresh: takenOver,
    });
    const state = { active: true, reading: Promise.resolve(), stop: () => undefined as void };
    const read = this.consume(
      streams.events,
      partitionConsumer(partition),
      2_000,
      (message) => this.receiveEvent(message),
      () => !this.stopped && state.active,
    );
    state.reading = read.reading;
    state.stop = read.stop;
    this.partitionReads.set(partition, state);
    await read.opened;
  }

  /** Stops reading a partition, and lets the batches under way in it finish. */
  private async releasePartition(partition: number): Promise<void> {
    const read = this.partitionReads.get(partition);
    if (!read) return;
    this.partitionReads.delete(partition);
    read.active = false;
    read.stop();
    await read.reading;
    const { partitions } = this.topology;
    await Promise.allSettled(
      [...this.draining].flatMap(([execution, drained]) =>
        partitionOf(execution, partitions) === partition ? [drained] : [],
      ),
    );
  }

  /** What this engine did: batches written, and compare-and-set conflicts met (another engine wrote first). */
  readonly counts = { conflicts: 0, writes: 0 };

  /** The partitions this engine holds now (for tests and the API). */
  get partitionsHeld(): number[] {
    return this.leases.holding;
  }

  /** Says "still working" for every event held longer than a third of the ack wait. */
  private keepEventsAlive(): void {
    // A safety net: queued events with no drain (there should be none) get one.
    for (const execution of this.mailboxes.keys()) this.ensureDraining(execution);
    const now = Date.now();
    for (const deliveries of [...this.mailboxes.values(), ...this.inFlight.values()])
      for (const delivery of deliveries) {
        if (now - delivery.touchedAt < eventAckWaitMs / 3) continue;
        delivery.message.working();
        delivery.touchedAt = now;
      }
  }

  /**
   * Reads a durable consumer until the orchestrator stops. A read that ends on its own (nats.js
   * stops it on some server answers, e.g. after nats-server lost state in a crash) is opened
   * again after a second: an engine whose reads silently ended would hold its share of nothing,
   * and never say so. `opened` resolves when the first read is open (rejects if it cannot be).
   */
  private consume(
    stream: string,
    consumer: string,
    maxMessages: number,
    handle: (message: JsMsg) => void | Promise<void>,
    wanted: () => boolean = () => !this.stopped,
  ): { opened: Promise<void>; reading: Promise<void>; stop: () => void } {
    let opened!: () => void;
    let failed!: (error: unknown) => void;
    const first = new Promise<void>((resolve, reject) => {
      opened = resolve;
      failed = reject;
    });
    let isFirst = true;
    let current: ConsumerMessages | undefined;
    const reading = (async () => {
      while (wanted()) {
        let messages: ConsumerMessages | undefined;
        try {
          messages = await (
            await this.topology.js.consumers.get(stream, consumer)
          ).consume({ max_messages: maxMessages, expires: pullExpiresMs });
          this.consumers.push(messages);
          current = messages;
          if (!wanted()) messages.stop();
          if (isFirst) opened();
          isFirst = false;
          for await (const message of messages) {
            try {
              await handle(message);
            } catch (error) {
              this.log.error("could not handle a message", {
                subject: message.subject,
                error: String(error),
              });
              message.nak(retryDelayMs);
            }
          }
          if (!wanted()) return;
          this.log.warn("a read of a consumer ended; reading again", { stream, consumer });
        } catch (error) {
          if (isFirst) return failed(error);
          if (!wanted()) return;
          this.log.warn("a read of a consumer failed; reading again", {
            stream,
            consumer,
            error: String(error),
          });
        } finally {
          const index = messages === undefined ? -1 : this.consumers.indexOf(messages);
          if (index >= 0) this.consumers.splice(index, 1);
        }
        await new Promise((resolve) => setTimeout(resolve, 1_000));
      }
      // Not wanted before it ever opened (the engine stopped, or the partition went, meanwhile):
      // nothing waits for it.
      if (isFirst) opened();
    })();
    // stop() waits for the message in hand (a removal half done, a timer being fired).
    this.reads.push(reading);
    return { opened: first, reading, stop: () => current?.stop() };
  }

  private receiveEvent(message: JsMsg): void {
    // `baton.events.p.<partition>.<id>`: the engine's and the API's events; `….<id>.result`: a
    // worker's report, where only reports are taken (a worker may publish there and nowhere else).
    const [, partition, execution = "", result] = eventSubject.exec(message.subject) ?? [];
    const fromWorker = result !== undefined;
    let parsed: unknown;
    try {
      parsed = message.json();
    } catch {
      parsed = undefined;
    }
    let checked = checkEngineEvent(parsed);
    if (checked.ok && fromWorker && !workerEventTypes.has(checked.event.type))
      checked = { ok: false, reason: `${checked.event.type}: not a worker's report, on a worker's subject` };
    // An execution's events are on its own partition's subjects, and nowhere else.
    const misplaced =
      !isExecutionId(execution) || Number(partition) !== partitionOf(execution, this.topology.partitions);
    if (misplaced || !checked.ok) {
      // A malformed event would fail the same way forever: log it and drop it for good.
      this.log.warn("dropping a malformed event", {
        subject: message.subject,
        reason: misplaced ? "bad execution id or partition in subject" : checked.ok ? "" : checked.reason,
      });
      message.term();
      return;
    }
    if (checked.event.type === "task.started") {
      // Workers of the protocol's first form announce a start as an event of its own; the result
      // now carries it (`startedAt`), so it is acknowledged and costs no write.
      message.ack();
      return;
    }
    const id = message.headers?.get("Nats-Msg-Id") || `seq:${message.seq}`;
    const delivery: Delivery = { event: checked.event, id, message, touchedAt: Date.now() };
    const queue = this.mailboxes.get(execution);
    if (queue) queue.push(delivery);
    else this.mailboxes.set(execution, [delivery]);
    this.ensureDraining(execution);
  }

  /**
   * One drain per execution with queued events. A drain gives up its place in the same tick as it
   * finds its mailbox empty, so an event queued right after always finds either a running drain
   * that will take it or none (and starts one): none is left behind, kept alive and never applied.
   */
  private ensureDraining(execution: string): void {
    if (this.draining.has(execution)) return;
    const drained: Promise<void> = this.drain(execution).finally(() => {
      if (this.draining.get(execution) === drained) this.draining.delete(execution);
    });
    this.draining.set(execution, drained);
  }

  private async drain(execution: string): Promise<void> {
    for (;;) {
      const queued = this.mailboxes.get(execution);
      if (!queued || queued.length === 0) {
        this.mailboxes.delete(execution);
        this.draining.delete(execution);
        return;
      }
      // A record remembers the ids of its last `appliedMemory` events: a batch never holds more,
      // so a redelivery of any of them is still recognised. An event that failed here before is
      // applied on its own: if it is poison, it alone is set aside.
      const suspect = queued.findIndex((delivery) => this.failures.has(delivery.id));
      const batch = suspect >= 0 ? queued.splice(suspect, 1) : queued.splice(0, maxBatch);
      if (queued.length === 0) this.mailboxes.delete(execution);
      this.inFlight.set(execution, batch);
      try {
        await this.applyBatch(execution, batch);
        crashPoint("before-ack");
        for (const delivery of batch) {
          delivery.message.ack();
          this.failures.delete(delivery.id);
        }
      } catch (error) {
        if (error instanceof ExecutionNotYetStarted) {
          for (const delivery of batch) {
            const tries = delivery.message.info.redeliveryCount ?? 1;
            delivery.message.nak(Math.min(100 * 2 ** (tries - 1), 2_000));
          }
          continue;
        }
        this.store.forget(execution);
        const transient = isTransient(error);
        if (!transient) for (const delivery of batch) this.countFailure(delivery.id);
        const [only] = batch;
        if (
          batch.length === 1 &&
          only &&
          !transient &&
          (this.failures.get(only.id) ?? 0) >= poisonAfterFailures
        ) {
          this.failures.delete(only.id);
          await this.setAside(execution, only, error).catch((reason: unknown) => {
            this.log.error("could not set a poison event aside", { execution, error: String(reason) });
            only.message.nak(retryDelayMs);
          });
          continue;
        }
        // NATS away or a stream electing a leader is weather, not something for a person to fix.
        if (transient)
          this.log.info("NATS is unavailable or electing a leader; the events will be redelivered", {
            execution,
            error: String(error),
          });
        else
          this.log.error("could not apply events; they will be redelivered", {
            execution,
            error: String(error),
          });
        for (const delivery of batch) delivery.message.nak(retryDelayMs);
      } finally {
        this.inFlight.delete(execution);
      }
    }
  }

  /** Failures to apply an event here (not for NATS being away): the count that makes it poison. */
  private countFailure(id: string): void {
    const count = (this.failures.get(id) ?? 0) + 1;
    this.failures.delete(id); // re-inserted last: the map forgets the oldest first
    this.failures.set(id, count);
    if (this.failures.size > 10_000) this.failures.delete(this.failures.keys().next().value!);
  }

  /**
   * An event that fails every time it is applied: keep it on BATON_POISON with the reason, fail
   * its execution with `EventPoisoned` (its parent hears of it; nothing waits forever), drop it.
   */
  private async setAside(execution: string, delivery: Delivery, error: unknown): Promise<void> {
    const reason = error instanceof Error ? error.message : String(error);
    const { js } = this.topology;
    await js.publish(
      poisonSubject(execution),
      JSON.stringify({ execution, event: delivery.event, eventId: delivery.id, reason, at: Date.now() }),
      { msgID: `poison:${delivery.id}` },
    );
    this.log.error("set a poison event aside; its execution fails", {
      execution,
      event: delivery.event.type,
      reason,
    });
    for (let attempt = 0; attempt < 50; attempt++) {
      const stored = await this.store.load(execution, { fresh: true });
      if (!stored) break;
      if (isEnded(stored.record.status)) {
        // Failed already (by an earlier try that could not send): its outbox may not have left.
        if (this.sentOutbox.get(execution) !== stored.revision && hasOutbox(stored.record))
          await this.sendOutbox(stored.record, stored.record.outbox, stored.record.outboxHistory ?? []);
        break;
      }
      const failure = stepError(
        "EventPoisoned",
        `a ${delivery.event.type} event could not be applied: ${reason}`,
        { event: delivery.event.type, eventId: delivery.id },
      );
      const applied = failExecution(stored.record, failure, Date.now());
      applied.record.outboxHistory = applied.history;
      try {
        const next = await this.store.update(applied.record, stored.revision);
        await this.send(next, applied);
        break;
      } catch (conflict) {
        if (!(conflict instanceof RevisionConflict)) throw conflict;
      }
    }
    delivery.message.term();
  }

  private async applyBatch(execution: string, batch: Delivery[]): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const fresh = attempt > 0;
      // A batch that opens with its start is almost always a new execution: skip the look-up
      // and let the create's compare-and-set tell otherwise.
      const startsFresh = !fresh && batch[0]?.event.type === "execution.start" && !this.store.has(execution);
      const stored = startsFresh ? undefined : await this.store.load(execution, { fresh });
      try {
        if (!stored) return await this.begin(execution, batch);
        const changed = await this.advance(stored, batch);
        // Deciding that nothing changes is only safe on the latest record: a cached one may be
        // behind another replica's write, which no compare-and-set would reveal here.
        if (changed || fresh) return;
      } catch (error) {
        if (!(error instanceof RevisionConflict) || attempt >= 50) throw error;
        this.counts.conflicts += 1;
      }
    }
  }

  /** The first events of an execution: its start, and whatever arrived with it. */
  private async begin(execution: string, batch: Delivery[]): Promise<void> {
    const start = batch.find((delivery) => delivery.event.type === "execution.start");
    if (!start) {
      // Its start may still be on its way (another replica holds it): try again shortly, and
      // give up only after many tries. Events for an execution removed by retention never get here.
      const patient = batch.filter(
        (delivery) => Date.now() - delivery.message.info.timestampNanos / 1e6 < unknownExecutionPatienceMs,
      );
      if (patient.length > 0) throw new ExecutionNotYetStarted(execution);
      this.log.warn("dropping events for an execution that never started", {
        execution,
        events: batch.map((d) => d.event.type),
      });
      return;
    }
    const event = start.event as StartEvent;
    const compiled = await this.compiledFor(event.workflow, event.revision);
    if (!compiled) {
      this.log.error("dropping a start for a workflow revision that does not exist", {
        execution,
        workflow: event.workflow,
      });
      return;
    }
    let applied = startExecution(compiled, execution, event, { traced: tracingEnabled() });
    applied.record.applied = [start.id];
    const rest = batch.filter((delivery) => delivery !== start);
    applied = this.fold(compiled, applied, rest);
    // The start's own history rides in the record like any other: a lost publish is sent again.
    applied.record.outbox = applied.commands;
    applied.record.outboxHistory = applied.history;
    const stored = await this.store.create(applied.record);
    await this.send(stored, applied);
  }

  /** Applies a batch to a stored record; resolves to whether anything changed. */
  private async advance(stored: StoredRecord<ExecutionRecord>, batch: Delivery[]): Promise<boolean> {
    const { record } = stored;
    // A written outbox this process has not seen sent may not have left (its writer crashed, or
    // NATS was away): send it again, however old. Every receiver deduplicates by the identity of
    // what it receives (an attempt, a timer token, a start or done per execution, a history seq).
    if (this.sentOutbox.get(record.id) !== stored.revision && hasOutbox(record)) {
      await this.sendOutbox(record, record.outbox, record.outboxHistory ?? []);
      this.sentOutbox.set(record.id, stored.revision);
    }
    if (!batch.some((delivery) => takesEvent(record, delivery.event))) return false;
    const compiled = await this.compiledFor(record.workflow, record.revision);
    if (!compiled) throw new Error(`workflow ${record.workflow} revision ${record.revision} is missing`);
    const deliveries = await this.withJoinResults(record, batch);
    const applied = this.fold(compiled, { record, commands: [], history: [], spans: [] }, deliveries);
    if (applied.record === record) return false;
    const next = await this.store.update(applied.record, stored.revision);
    this.counts.writes += 1;
    await this.send(next, applied);
    return true;
  }

  /**
   * The batch, with every item's result on the answers that complete a map's join (map-join.ts):
   * read from the items' records, 256 at a time, without caching them.
   */
  private async withJoinResults(record: ExecutionRecord, batch: Delivery[]): Promise<Delivery[]> {
    const joins = joinsCompleted(
      record,
      batch.map((delivery) => delivery.event),
    );
    if (joins.length === 0) return batch;
    const results = new Map<string, Json[]>();
    for (const join of joins) {
      const ids = joinItems(record.id, join);
      const gathered: Json[] = new Array<Json>(ids.length);
      let next = 0;
      const lane = async () => {
        while (next < ids.length) {
          const index = next++;
          const item = await this.store.load(ids[index]!, { fresh: true, keep: false });
          if (!item)
            throw new Error(
              `map "${join.step}": the record of item ${index} (${ids[index]}) is gone, and its result with it`,
            );
          gathered[index] = itemResult(item.record);
        }
      };
      await Promise.all(Array.from({ length: Math.min(256, ids.length) }, lane));
      results.set(resultsKey(join), gathered);
    }
    const events = withJoinResults(
      batch.map((delivery) => delivery.event),
      results,
    );
    return batch.map((delivery, index) => ({ ...delivery, event: events[index]! }));
  }

  /** Applies deliveries one after another in memory; one write persists them all. */
  private fold(compiled: CompiledWorkflow, initial: Applied, deliveries: Delivery[]): Applied {
    let { record } = initial;
    const commands = [...initial.commands];
    const history: HistoryEntry[] = [...initial.history];
    const spans = [...initial.spans];
    for (const delivery of deliveries) {
      if (!takesEvent(record, delivery.event)) continue;
      const applied = applyEvent(compiled, record, delivery.event, delivery.id, this.applyOptions);
      if (!applied) continue;
      record = applied.record;
      commands.push(...applied.commands);
      history.push(...applied.history);
      spans.push(...applied.spans);
    }
    if (record !== initial.record) {
      record.outbox = commands;
      record.outboxHistory = history;
    }
    return { record, commands, history, spans };
  }

  private async send(stored: StoredRecord<ExecutionRecord>, applied: Applied): Promise<void> {
    const { record } = stored;
    // Spans leave once what they describe is persisted (a write that lost a race exports nothing),
    // and before the sends: a failed send redelivers events that are then already applied, and
    // whose spans would not be planned again.
    exportPlannedSpans(applied.spans);
    crashPoint("after-write");
    await this.sendOutbox(record, applied.commands, applied.history);
    this.sentOutbox.set(record.id, stored.revision);
    if (this.sentOutbox.size > this.config.cacheSize)
      this.sentOutbox.delete(this.sentOutbox.keys().next().value!);
  }

  /** The commands and the history of one write; the history as one message, deduplicated by its first seq. */
  private async sendOutbox(record: ExecutionRecord, commands: OutboxEntry[], history: HistoryEntry[]) {
    const sends = [
      dispatchCommands(this.deps, record, commands),
      ...(history.length === 0
        ? []
        : [
            this.topology.js.publish(subjects.history(record.id), JSON.stringify(history), {
              msgID: `history:${record.id}:${history[0]!.seq}`,
            }),
          ]),
    ];
    if (crashPointArmed("mid-send")) {
      await sends[0];
      // Core publishes (a cancel) are written at the end of the event loop turn (nats-coalesce.ts):
      // let them leave, so that "mid-send" means the commands went and the history did not.
      await new Promise((resolve) => setImmediate(resolve));
      crashPoint("mid-send");
    }
    await Promise.all(sends);
  }

  private async compiledFor(name: string, revision: number): Promise<CompiledWorkflow | undefined> {
    const key = `${name}@${revision}`;
    const cached = this.compiled.get(key);
    if (cached) return cached;
    const stored = await this.workflows.get(name, revision);
    if (!stored) return undefined;
    const compiled = compileWorkflow(stored.definition, { maxBackwardJumps: this.config.maxBackwardJumps });
    this.compiled.set(key, compiled);
    return compiled;
  }

  /**
   * A timer off BATON_TIMERS, or a removal off BATON_RETENTION (`retention`: nothing else is taken
   * there). Removals armed before retention had its own stream still come on BATON_TIMERS.
   */
  private async receiveTimer(message: JsMsg, { retention = false } = {}): Promise<void> {
    // The index's check (timer-index.ts): one without an event or a token was never armed by an
    // engine, and would fail the same way at every delivery.
    const timer = checkTimer(message);
    if (!timer || (retention && timer.event.type !== expireEvent)) {
      this.log.warn("dropping a malformed timer", { subject: message.subject });
      message.term();
      return;
    }
    const wait = timer.due - Date.now();
    if (wait > 0) {
      // Not due: JetStream keeps it and hands it back when it is. No engine memory is spent on it.
      message.nak(wait);
      return;
    }
    if (timer.event.type === expireEvent) {
      const { endedAt } = timer.event as { endedAt?: unknown };
      const later = await this.expire(timer.execution, typeof endedAt === "number" ? endedAt : undefined);
      // An end this removal does not know of (armed before removals named their end, with a
      // retention lengthened since): the record expires later; keep the removal until then.
      if (later !== undefined) {
        message.nak(later);
        return;
      }
    } else {
      const fired = timerFired(timer);
      await publishEvent(this.topology.js, this.topology.partitions, fired.execution, fired.event, fired.id);
    }
    message.ack();
  }

  /**
   * Retention: a finished execution, its history and its effect ledger go, when the removal due
   * is that of the execution's last end (`endedAt`). A removal of an earlier end (the execution
   * was retried since) changes nothing: the later end, or the one to come, has its own. Resolves
   * to the ms left when the record ends later than this removal allows for.
   */
  private async expire(execution: string, endedAt: number | undefined): Promise<number | undefined> {
    const stored = await this.store.load(execution, { fresh: true });
    if (stored && !isEnded(stored.record.status)) return undefined; // running again: its end arms another
    if (stored && endedAt !== undefined && stored.record.endedAt !== endedAt) return undefined;
    const left = stored ? (stored.record.endedAt ?? 0) + this.config.retentionMs - Date.now() : 0;
    if (left > 0) return left;
    // A map's item is kept while its parent runs: the map's join reads every item's result from
    // the items' records (map-join.ts), however long the map takes. Its removal is put off by a
    // retention period, as a message of its own (a delayed one would hold a place in the window).
    const parent = stored?.record.parent;
    if (stored && parent?.kind === "item") {
      const running = await this.store.load(parent.execution, { fresh: true, keep: false });
      if (running && !isEnded(running.record.status)) {
        await armRemoval(
          this.topology.js,
          execution,
          stored.record.endedAt ?? 0,
          Date.now() + this.config.retentionMs,
          {
            putOff: true,
          },
        );
        return undefined;
      }
    }
    // The record goes last: while it exists, a crash here means the timer comes back and finishes the job.
    await eraseKeys(this.topology.effects, `${execution}.>`);
    await this.topology.jsm.streams.purge(streams.history, { filter: subjects.history(execution) });
    await this.store.remove(execution);
    return undefined;
  }

  /** For tests and the API: the record as JetStream has it now. */
  async read(execution: string): Promise<ExecutionRecord | undefined> {
    return (await this.store.load(execution, { fresh: true }))?.record;
  }

  get isStopped(): boolean {
    return this.stopped;
  }
}
