/**
 * What clients do to executions, over NATS only (so any process can do it: the API, the CLI, a
 * test): submit workflows, start, signal, cancel, read, await. Starting checks the input
 * against the workflow's schema first; a bad input creates nothing.
 */
import type { JetStreamClient, NatsConnection } from "nats";
import { streams, subjects } from "../../sdk/protocol.ts";
import { captureEmitSubjects, emitSubjectsOf, emittedStream } from "../nats/emit-stream.ts";
import { ensureTopology, type Topology } from "../nats/topology.ts";
import { WorkflowStore, type PutOutcome, type StoredWorkflow } from "../nats/workflow-store.ts";
import type { Problem } from "../errors.ts";
import { compileInputCheck, type InputProblem } from "../workflow/input-schema.ts";
import type { Json } from "../workflow/definition.ts";
import { validateWorkflowText } from "../workflow/validate.ts";
import { publishEvent } from "./dispatch-commands.ts";
import { isEnded, type ExecutionRecord } from "./execution-record.ts";
import type { HistoryEntry } from "./history.ts";
import { newExecutionId } from "./ids.ts";

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

export interface StartOptions {
  id?: string;
  event?: Json;
  trigger?: Json;
}

export class Executions {
  private constructor(
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly topology: Topology,
    readonly workflows: WorkflowStore,
  ) {}

  static async connect(nc: NatsConnection): Promise<Executions> {
    const topology = await ensureTopology(nc);
    return new Executions(nc, topology.js, topology, new WorkflowStore(topology.workflows));
  }

  /** Validates and stores every workflow of a document; stores nothing if any problem is found. */
  async apply(text: string): Promise<{ workflow: StoredWorkflow; outcome: PutOutcome }[]> {
    const { workflows, problems } = validateWorkflowText(text);
    if (problems.length > 0) throw new WorkflowInvalidError(problems);
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

  async start(
    workflow: string,
    input: Json,
    options: StartOptions = {},
  ): Promise<{ id: string; workflow: string; revision: number }> {
    const stored = await this.workflows.get(workflow);
    if (!stored) throw new WorkflowNotFoundError(`no workflow named "${workflow}" has been submitted`);
    const checked = compileInputCheck(stored.definition)(input);
    if (!checked.ok) throw new InputInvalidError(workflow, checked.problems);
    const id = options.id ?? newExecutionId();
    await publishEvent(
      this.js,
      id,
      {
        type: "execution.start",
        workflow,
        revision: stored.revision,
        input: checked.value,
        ...(options.event === undefined ? {} : { event: options.event }),
        ...(options.trigger === undefined ? {} : { trigger: options.trigger }),
      },
      `start:${id}`,
    );
    return { id, workflow, revision: stored.revision };
  }

  async signal(id: string, name: string, payload: Json): Promise<void> {
    await this.js.publish(
      subjects.events(id),
      JSON.stringify({ type: "signal", name, payload, at: Date.now() }),
    );
  }

  async cancel(id: string, reason = "cancelled by request"): Promise<void> {
    await publishEvent(this.js, id, { type: "cancel", reason }, `cancel:${id}`);
  }

  /** Re-runs a failed execution from the step that failed; completed steps keep their results. */
  async retry(id: string): Promise<void> {
    await this.js.publish(subjects.events(id), JSON.stringify({ type: "retry", at: Date.now() }));
  }

  async get(id: string): Promise<ExecutionRecord | undefined> {
    const entry = await this.topology.executions.get(id);
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

  /** Resolves with the record once the execution has ended, or `undefined` after `timeoutMs`. */
  async waitForEnd(id: string, timeoutMs: number): Promise<ExecutionRecord | undefined> {
    const watch = await this.topology.executions.watch({ key: id });
    const timer = setTimeout(() => watch.stop(), timeoutMs);
    try {
      for await (const entry of watch) {
        if (entry.operation !== "PUT") continue;
        const record = await this.get(id);
        if (record && isEnded(record.status)) return record;
      }
      return undefined;
    } finally {
      clearTimeout(timer);
      watch.stop();
    }
  }

  /** Every history record of an execution, in order. */
  async history(id: string): Promise<HistoryEntry[]> {
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
        // Each message holds the records one write produced.
        entries.push(...message.json<HistoryEntry[]>());
        got++;
      }
      if (got === 0) break;
      remaining -= got;
    }
    return entries;
  }

  private warn(message: string): void {
    console.warn(JSON.stringify({ level: "warn", message }));
  }

  get connection(): NatsConnection {
    return this.nc;
  }
}
