/**
 * What clients do to executions, over NATS only (so any process can do it: the API, the CLI, a
 * test): submit workflows, start, signal, cancel, read, await. Starting checks the input
 * against the workflow's schema first; a bad input creates nothing.
 */
import { pullExpiresMs, readPatienceMs, retryNats } from "../../sdk/nats-retry.ts";
import { listKeys } from "../nats/kv-keys.ts";
import type { JetStreamClient, NatsConnection } from "nats";
import { streams, subjects } from "../../sdk/protocol.ts";
import { captureEmitSubjects, emitSubjectsOf, emittedStream } from "../nats/emit-stream.ts";
import { IdempotencyKeys } from "../nats/idempotency-keys.ts";
import { ensureTopology, isNotFound, type Topology } from "../nats/topology.ts";
import { WorkflowStore, type PutOutcome, type StoredWorkflow } from "../nats/workflow-store.ts";
import type { Problem } from "../errors.ts";
import { compileInputCheck, type InputCheck, type InputProblem } from "../workflow/input-schema.ts";
import type { Json, WorkflowDefinition } from "../workflow/definition.ts";
import { validateWorkflowText } from "../workflow/validate.ts";
import { publishEvent } from "./dispatch-commands.ts";
import type { StartEvent } from "./engine-events.ts";
import { isEnded, type ExecutionRecord, type RecordStatus } from "./execution-record.ts";
import type { HistoryEntry } from "./history.ts";
import { newExecutionId } from "./ids.ts";
import { activeTraceparent } from "../telemetry/tracing.ts";

export class WorkflowInvalidError extends Error {
  override name = "WorkflowInvalidError";
  constructor(readonly problems: Problem[]) {
    super(
      `the workflow is invalid: ${problems.map((p) => `${p.line}:${p.column} ${p.code} ${p.path}: ${p.message}`).join("; ")}`,
    );
  }
}

export class InputInvalidError extends Error {
  override name = "InputInvalidError";
  constructor(
    readonly workflow: string,
    readonly problems: InputProblem[],
  ) {
    super(`input rejected by workflow "${workflow}": ${problems.map((p) => p.message).join("; ")}`);
  }
}

export class WorkflowNotFoundError extends Error {
  override name = "WorkflowNotFoundError";
}

/** `submit`: the document is valid, but it is not exactly one workflow of the expected name. */
export class WorkflowNameMismatchError extends Error {
  override name = "WorkflowNameMismatchError";
}

/** A start that has been accepted (it is on BATON_EVENTS) but that no engine has taken yet. */
export interface PendingStart {
  id: string;
  workflow: string;
  revision: number;
  input: Json;
  /** Epoch ms of the start. */
  at: number;
}

/** What `find` knows of an execution: its record, or the start no engine has taken yet. */
export type Found =
  { record: ExecutionRecord; pending?: undefined } | { pending: PendingStart; record?: undefined };

export interface ListQuery {
  workflow?: string;
  status?: RecordStatus;
  limit: number;
  /** The id of the last execution of the previous page. */
  after?: string;
}

export interface ConnectOptions {
  /** How long an idempotency key of a start is remembered (the bucket's TTL, set when it is created). Default 24h. */
  idempotencyTtlMs?: number;
  /** `BATON_PARTITIONS`, when set: what a deployment that is new is started with (engine/nats/partitions.ts). */
  partitions?: number;
}

/** How long after its claim an idempotency key whose execution cannot be found is started again. */
const claimHealMs = 60_000;
/** Records a listing page reads at most, whatever its filters: a page may come back short, with `next`. */
const listScanLimit = 2_000;
/** Compiled input checks kept, by workflow revision. */
const inputCheckCacheSize = 256;

export interface StartOptions {
  id?: string;
  event?: Json;
  trigger?: Json;
  /** What caused the start, as W3C `traceparent`s; by default the active span (an API request's). */
  links?: string[];
}

export class Executions {
  private idempotencyKeys: Promise<IdempotencyKeys> | undefined;
  private readonly inputChecks = new Map<string, (input: Json) => InputCheck>();

  private constructor(
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly topology: Topology,
    readonly workflows: WorkflowStore,
    private readonly options: ConnectOptions,
  ) {}

  static async connect(nc: NatsConnection, options: ConnectOptions = {}): Promise<Executions> {
    const topology = await ensureTopology(nc, undefined, options.partitions);
    return new Executions(nc, topology.js, topology, new WorkflowStore(topology.workflows), options);
  }

  /** Every problem of a workflow text; stores nothing. */
  validate(text: string): Problem[] {
    return validateWorkflowText(text).problems;
  }

  /** Validates and stores every workflow of a document; stores nothing if any problem is found. */
  async apply(text: string): Promise<{ workflow: StoredWorkflow; outcome: PutOutcome }[]> {
    const { workflows, problems } = validateWorkflowText(text);
    if (problems.length > 0) throw new WorkflowInvalidError(problems);
    return this.store(workflows, text);
  }

  /**
   * Validates and stores a document that must hold exactly one workflow, named `name`
   * (`PUT /v1/workflows/{name}`). Stores nothing when it is invalid or named otherwise.
   */
  async submit(name: string, text: string): Promise<{ workflow: StoredWorkflow; outcome: PutOutcome }> {
    const { workflows, problems } = validateWorkflowText(text);
    if (problems.length > 0) throw new WorkflowInvalidError(problems);
    const names = workflows.map((definition) => `"${definition.name}"`);
    if (workflows.length !== 1 || workflows[0]!.name !== name)
      throw new WorkflowNameMismatchError(
        workflows.length === 1
          ? `the document defines the workflow ${names[0]}, not "${name}": submit it to /v1/workflows/${workflows[0]!.name}, or rename it`
          : `the document defines ${workflows.length} workflows (${names.join(", ")}); submit one workflow, named "${name}", per request`,
      );
    const [result] = await this.store(workflows, text);
    return result!;
  }

  private async store(
    workflows: WorkflowDefinition[],
    text: string,
  ): Promise<{ workflow: StoredWorkflow; outcome: PutOutcome }[]> {
    // Emitted events go through a stream so that JetStream can deduplicate them; a subject that
    // another stream already captures stays with it (and is deduplicated there, if at all).
    try {
      await captureEmitSubjects(this.topology.jsm, workflows.flatMap(emitSubjectsOf));
    } catch (error) {
      this.warn(`emit subjects not captured by ${emittedStream}: ${String(error)}`);
    }
    const results = [];
    for (const definition of workflows) results.push(await this.workflows.put(definition, text));
    return results;
  }

  /** The latest revision of every workflow, by name. */
  async listWorkflows(): Promise<StoredWorkflow[]> {
    // `<name>` is the latest revision; `<name>.r<n>` are the revisions themselves.
    const names = (await listKeys(this.topology.workflows)).filter((key) => !key.includes("."));
    const found = await Promise.all(names.map((name) => this.workflows.get(name)));
    return found.filter((workflow) => workflow !== undefined);
  }

  /**
   * Removes a workflow: it can no longer be started. Its revisions stay, so the executions
   * running on them finish. Resolves `false` when there was no such workflow.
   */
  async removeWorkflow(name: string): Promise<boolean> {
    if (!(await this.workflows.get(name))) return false;
    await this.workflows.remove(name);
    return true;
  }

  async start(
    workflow: string,
    input: Json,
    options: StartOptions = {},
  ): Promise<{ id: string; workflow: string; revision: number }> {
    const { revision, value } = await this.checkStart(workflow, input);
    const id = options.id ?? newExecutionId();
    await this.publishStart(id, workflow, revision, value, options);
    return { id, workflow, revision };
  }

  /**
   * Starts an execution unless one was started with the same idempotency key for the same
   * workflow (within the keys' TTL): then resolves with that one, `replayed: true`. A bad input
   * claims nothing.
   */
  async startOnce(
    workflow: string,
    input: Json,
    idempotencyKey: string,
  ): Promise<{ id: string; workflow: string; revision: number; replayed: boolean }> {
    const { revision, value } = await this.checkStart(workflow, input);
    const id = newExecutionId();
    const keys = await this.openIdempotencyKeys();
    const claim = await keys.claim(idempotencyKey, {
      execution: id,
      workflow,
      revision,
      claimedAt: Date.now(),
    });
    if (claim.claimed) {
      await this.publishStart(id, workflow, revision, value, {});
      return { id, workflow, revision, replayed: false };
    }
    const { first } = claim;
    // The first request may have died between its claim and its start: start it now. The start's
    // message id makes this a no-op when the first one did publish.
    if (Date.now() - first.claimedAt < claimHealMs && !(await this.find(first.execution)))
      await this.publishStart(first.execution, workflow, first.revision, value, {});
    return { id: first.execution, workflow, revision: first.revision, replayed: true };
  }

  private async checkStart(workflow: string, input: Json): Promise<{ revision: number; value: Json }> {
    const stored = await this.workflows.get(workflow);
    if (!stored) throw new WorkflowNotFoundError(`no workflow named "${workflow}" has been submitted`);
    const checked = this.inputCheckOf(stored)(input);
    if (!checked.ok) throw new InputInvalidError(workflow, checked.problems);
    return { revision: stored.revision, value: checked.value };
  }

  /** Compiling a JSON Schema costs far more than applying it: one compilation per revision. */
  private inputCheckOf(stored: StoredWorkflow): (input: Json) => InputCheck {
    const key = `${stored.name}@${stored.revision}:${stored.hash}`;
    let check = this.inputChecks.get(key);
    if (!check) {
      check = compileInputCheck(stored.definition);
      this.inputChecks.set(key, check);
      if (this.inputChecks.size > inputCheckCacheSize)
        this.inputChecks.delete(this.inputChecks.keys().next().value!);
    }
    return check;
  }

  private async publishStart(
    id: string,
    workflow: string,
    revision: number,
    input: Json,
    options: StartOptions,
  ): Promise<void> {
    const active = activeTraceparent();
    const links = options.links ?? (active ? [active] : []);
    await publishEvent(
      this.js,
      this.topology.partitions,
      id,
      {
        type: "execution.start",
        workflow,
        revision,
        input,
        ...(options.event === undefined ? {} : { event: options.event }),
        ...(options.trigger === undefined ? {} : { trigger: options.trigger }),
        ...(links.length > 0 ? { links } : {}),
      },
      `start:${id}`,
    );
  }

  private openIdempotencyKeys(): Promise<IdempotencyKeys> {
    this.idempotencyKeys ??= IdempotencyKeys.open(this.js, this.options.idempotencyTtlMs ?? 24 * 3_600_000);
    // A failed open (NATS away) is tried again by the next start.
    this.idempotencyKeys.catch(() => (this.idempotencyKeys = undefined));
    return this.idempotencyKeys;
  }

  /** Delivers a signal; one with an idempotency `key` is delivered once however often it is sent. */
  async signal(id: string, name: string, payload: Json, key?: string): Promise<void> {
    // With a key, a repeat is dropped by JetStream (message id); without, only a publish that
    // surely stored nothing (no responders) is repeated.
    await retryNats(
      () =>
        this.js.publish(
          subjects.events(id, this.topology.partitions),
          JSON.stringify({
            type: "signal",
            name,
            payload,
            ...(key === undefined ? {} : { key }),
            at: Date.now(),
          }),
          key === undefined ? {} : { msgID: `signal:${id}:${key}` },
        ),
      { idempotent: key !== undefined },
    );
  }

  async cancel(id: string, reason = "cancelled by request"): Promise<void> {
    await publishEvent(this.js, this.topology.partitions, id, { type: "cancel", reason }, `cancel:${id}`);
  }

  /** Re-runs a failed execution from the step that failed; completed steps keep their results. */
  async retry(id: string): Promise<void> {
    await retryNats(
      () =>
        this.js.publish(
          subjects.events(id, this.topology.partitions),
          JSON.stringify({ type: "retry", at: Date.now() }),
        ),
      { idempotent: false },
    );
  }

  async get(id: string): Promise<ExecutionRecord | undefined> {
    const entry = await retryNats(() => this.topology.executions.get(id), { patienceMs: readPatienceMs });
    if (!entry || entry.operation !== "PUT") return undefined;
    const value = entry.json<ExecutionRecord | { chunked: unknown }>();
    if ("chunked" in value) {
      // Large records are split; read them through the store the engine uses.
      const { ExecutionStore } = await import("../nats/execution-store.ts");
      return (
        await new ExecutionStore<ExecutionRecord>(this.topology.executions, 1).load(id, { fresh: true })
      )?.record;
    }
    return value;
  }

  /**
   * The execution's record or, between a start being accepted and an engine taking it, the
   * start itself; `undefined` when there is neither.
   */
  async find(id: string): Promise<Found | undefined> {
    const record = await this.get(id);
    if (record) return { record };
    const pending = await this.pendingStart(id);
    if (pending) return { pending };
    // An engine may have taken the start between our two reads.
    const late = await this.get(id);
    return late ? { record: late } : undefined;
  }

  /** The start waiting on BATON_EVENTS for an execution no engine has created yet. */
  private async pendingStart(id: string): Promise<PendingStart | undefined> {
    let event: Partial<StartEvent>;
    try {
      // The first message left on the execution's subject: its start, until an engine takes
      // it (events after the start stay behind it in the work queue). `next_by_subj` is in
      // nats-server's message-get API since 2.9, though not in nats.js's type.
      const message = await this.topology.jsm.streams.getMessage(streams.events, {
        seq: 0,
        next_by_subj: subjects.events(id, this.topology.partitions),
      } as never);
      event = message.json<Partial<StartEvent>>();
    } catch (error) {
      if (isNotFound(error) || /no message found/i.test(String(error)) || error instanceof SyntaxError)
        return undefined;
      throw error;
    }
    if (event.type !== "execution.start" || typeof event.workflow !== "string") return undefined;
    return {
      id,
      workflow: event.workflow,
      revision: event.revision ?? 0,
      input: event.input ?? null,
      at: event.at ?? Date.now(),
    };
  }

  /**
   * Top-level executions, newest first (see nats/execution-index.ts for how, and its cost). A
   * page may hold fewer than `limit` items and still have a `next`: filters are applied while
   * reading, and a page reads at most a bounded number of records.
   */
  async list(query: ListQuery): Promise<{ items: ExecutionRecord[]; next?: string }> {
    const ids = await this.topology.executionIndex.ids(query.after);
    const items: ExecutionRecord[] = [];
    let scanned = 0;
    for (const id of ids) {
      if (items.length === query.limit || scanned === listScanLimit) return { items, next: ids[scanned - 1] };
      scanned++;
      const record = await this.get(id);
      if (!record) continue;
      if (query.workflow !== undefined && record.workflow !== query.workflow) continue;
      if (query.status !== undefined && record.status !== query.status) continue;
      items.push(record);
    }
    return { items };
  }

  /** Resolves with the record once the execution has ended, or `undefined` after `timeoutMs`. */
  async waitForEnd(id: string, timeoutMs: number): Promise<ExecutionRecord | undefined> {
    return this.awaitEnd(id, { timeoutMs });
  }

  /**
   * Like {@link waitForEnd}, and also gives up (resolving `undefined`) when `signal` aborts: a
   * long poll whose server is closing.
   */
  awaitEnd(
    id: string,
    options: { timeoutMs: number; signal?: AbortSignal },
  ): Promise<ExecutionRecord | undefined> {
    return this.awaitRecord(id, (record) => isEnded(record.status), options);
  }

  /**
   * Resolves with the execution's record as soon as it satisfies `until` (at once if it does
   * already), or `undefined` after `timeoutMs` or when `signal` aborts.
   */
  async awaitRecord(
    id: string,
    until: (record: ExecutionRecord) => boolean,
    { timeoutMs, signal }: { timeoutMs: number; signal?: AbortSignal },
  ): Promise<ExecutionRecord | undefined> {
    if (signal?.aborted) return undefined;
    // A watch hands over the entry as it is now, then every change.
    const watch = await this.topology.executions.watch({ key: id });
    const timer = setTimeout(() => watch.stop(), timeoutMs);
    const abort = () => watch.stop();
    // An abort while the watch was being set up has already fired: stop now.
    if (signal?.aborted) abort();
    signal?.addEventListener("abort", abort, { once: true });
    try {
      for await (const entry of watch) {
        if (entry.operation !== "PUT") continue;
        const record = await this.get(id);
        if (record && until(record)) return record;
      }
      return undefined;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", abort);
      watch.stop();
    }
  }

  /** Every history record of an execution, in order. */
  /**
   * An execution's history records, in order. `record` is its record as read before this call:
   * the records of its last write may not be published yet (the engine publishes them after the
   * write, and again after a crash), but they ride in the record (`outboxHistory`), so they are
   * added here. Every write before the last was published before the last was made, so together
   * they are the whole history up to the record: an ended execution's history always ends with
   * its end, and no step shows as cut short because its last records were still on their way.
   */
  async history(id: string, record?: Pick<ExecutionRecord, "outboxHistory">): Promise<HistoryEntry[]> {
    const entries = await this.publishedHistory(id);
    const last = entries.at(-1)?.seq ?? 0;
    entries.push(...(record?.outboxHistory ?? []).filter((entry) => entry.seq > last));
    return entries;
  }

  /** The history records published to BATON_HISTORY so far. */
  private async publishedHistory(id: string): Promise<HistoryEntry[]> {
    const subject = subjects.history(id);
    const info = await this.topology.jsm.streams.info(streams.history, { subjects_filter: subject });
    let remaining = info.state.subjects?.[subject] ?? 0;
    const entries: HistoryEntry[] = [];
    if (remaining === 0) return entries;
    const consumer = await this.js.consumers.get(streams.history, { filterSubjects: subject });
    while (remaining > 0) {
      const batch = await consumer.fetch({ max_messages: Math.min(remaining, 1_000), expires: 5_000 });
      let got = 0;
      for await (const message of batch) {
        // Each message holds the records one write produced; a resent one (its writer crashed
        // before it knew the send went through) repeats records already read.
        const last = entries.at(-1)?.seq ?? 0;
        entries.push(...message.json<HistoryEntry[]>().filter((entry) => entry.seq > last));
        got++;
      }
      if (got === 0) break;
      remaining -= got;
    }
    return entries;
  }

  /**
   * An execution's history records as they are written, from the first: each item is what one
   * write produced. Runs until `signal` aborts (or the connection closes). An ordered consumer
   * (one subject, so nats-server 2.9 serves it) reads the stored records, then the live ones.
   */
  async *followHistory(id: string, signal: AbortSignal): AsyncGenerator<HistoryEntry[]> {
    if (signal.aborted) return;
    const consumer = await this.js.consumers.get(streams.history, { filterSubjects: subjects.history(id) });
    const messages = await consumer.consume({ expires: pullExpiresMs });
    const stop = () => messages.stop();
    // An abort while the consumer was being set up has already fired: stop now.
    if (signal.aborted) stop();
    signal.addEventListener("abort", stop, { once: true });
    let last = 0;
    try {
      for await (const message of messages) {
        let entries: unknown;
        try {
          entries = message.json();
        } catch {
          continue; // Not written by an engine: nothing to show.
        }
        if (!Array.isArray(entries)) continue;
        // A resent write repeats records already yielded: each is shown once.
        const fresh = (entries as HistoryEntry[]).filter((entry) => entry.seq > last);
        if (fresh.length === 0) continue;
        last = fresh.at(-1)!.seq;
        yield fresh;
      }
    } finally {
      signal.removeEventListener("abort", stop);
      messages.stop();
    }
  }

  private warn(message: string): void {
    console.warn(JSON.stringify({ level: "warn", message }));
  }

  get connection(): NatsConnection {
    return this.nc;
  }
}
