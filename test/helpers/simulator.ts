/**
 * Drives compiled workflow machines in memory with a simulated clock: the conformance suite's
 * stand-in for the orchestrator. It carries out the commands the machines name (tasks answered
 * by scripted function behaviours, timers on the simulated clock, map items and child workflows
 * as executions of their own) and, like the orchestrator, round-trips every snapshot through
 * JSON and `resolveState`, so a machine that only works while its snapshot stays in memory fails here.
 */
import { initialTransition, transition, type AnyMachineSnapshot, type AnyStateMachine } from "xstate";
import type { StepError } from "../../engine/errors.ts";
import type { Json, Template } from "../../engine/workflow/definition.ts";
import { durationMs } from "../../engine/workflow/duration.ts";
import { evaluateTemplate } from "../../engine/workflow/expressions.ts";
import type { CompiledWorkflow } from "../../engine/workflow/compile/compile-workflow.ts";
import type {
  Command,
  ExecutionStatus,
  MachineContext,
  MachineEvent,
  MachineInput,
} from "../../engine/workflow/compile/machine-types.ts";

export interface Behaviour {
  output?: Template;
  error?: { code: string; message?: string; retryable?: boolean };
  delay?: string;
}
export type FunctionScript = Behaviour | { attempts: Behaviour[] };

export interface SimulationCase {
  input?: Json;
  event?: Json;
  trigger?: Json;
  functions?: Record<string, FunctionScript>;
  signals?: { name: string; at?: string; payload?: Json }[];
  messages?: { subject: string; at?: string; data?: Json }[];
  cancelAt?: string;
}

export interface SimulationResult {
  status: ExecutionStatus | "running";
  output: Json;
  error: StepError | null;
  trace: string[];
  attempts: Record<string, number>;
  calls: Record<string, number>;
  emitted: { subject: string; data: Json }[];
  elapsedMs: number;
  maxInFlight: Record<string, number>;
  history: { at: number; type: string; step?: string }[];
}

export const simulationStart = Date.parse("2026-01-01T00:00:00Z");
const maxEvents = 2_000_000;

interface Execution {
  id: string;
  machine: AnyStateMachine;
  compiled: CompiledWorkflow;
  snapshot: AnyMachineSnapshot;
  parent?: { id: string; kind: "item" | "child"; step: string; run: number; index?: number };
  ended: boolean;
}

interface Queued {
  at: number;
  seq: number;
  execution: string;
  event: MachineEvent;
  /** Timers and tasks can be cancelled by this key. */
  key?: string;
  cancelled?: boolean;
}

/** Runs one case of a workflow; `workflows` holds it and any workflow it starts as a child. */
export function simulate(
  workflows: ReadonlyMap<string, CompiledWorkflow>,
  main: string,
  testCase: SimulationCase,
): SimulationResult {
  return new Simulation(workflows, testCase).run(main);
}

class Simulation {
  private now = simulationStart;
  private seq = 0;
  private readonly queue: Queued[] = [];
  private readonly executions = new Map<string, Execution>();
  private readonly inFlight: Record<string, number> = {};
  private rootId = "";
  private rootEnd: { status: ExecutionStatus; output: Json; error: StepError | null; at: number } | undefined;
  readonly result: SimulationResult = {
    status: "running",
    output: null,
    error: null,
    trace: [],
    attempts: {},
    calls: {},
    emitted: [],
    elapsedMs: 0,
    maxInFlight: {},
    history: [],
  };

  constructor(
    private readonly workflows: ReadonlyMap<string, CompiledWorkflow>,
    private readonly testCase: SimulationCase,
  ) {}

  run(main: string): SimulationResult {
    const compiled = this.workflows.get(main);
    if (!compiled) throw new Error(`no workflow "${main}"`);
    this.rootId = "exec-1";
    for (const signal of this.testCase.signals ?? []) {
      this.schedule(at(signal.at), this.rootId, {
        type: "signal",
        name: signal.name,
        payload: signal.payload ?? null,
        at: 0,
      });
    }
    for (const message of this.testCase.messages ?? []) {
      this.schedule(at(message.at), this.rootId, {
        type: "message",
        subject: message.subject,
        data: message.data ?? null,
        at: 0,
      });
    }
    if (this.testCase.cancelAt !== undefined) {
      this.schedule(at(this.testCase.cancelAt), this.rootId, { type: "cancel", at: 0 });
    }
    const input = compiled.checkInput(this.testCase.input ?? {});
    if (!input.ok) throw new Error(`the case's input is invalid: ${JSON.stringify(input.problems)}`);
    this.start(this.rootId, compiled, compiled.machine, {
      input: input.value,
      execution: { id: this.rootId, workflow: compiled.definition.name, revision: 1, startedAt: this.now },
      ...(this.testCase.event === undefined ? {} : { event: this.testCase.event }),
      ...(this.testCase.trigger === undefined ? {} : { trigger: this.testCase.trigger }),
    });

    let processed = 0;
    while (!this.rootEnd && this.queue.length > 0) {
      if (++processed > maxEvents) throw new Error(`simulation did not end after ${maxEvents} events`);
      const next = this.queue.shift()!;
      if (next.cancelled) continue;
      this.release(next);
      this.now = Math.max(this.now, next.at);
      const execution = this.executions.get(next.execution);
      if (!execution || execution.ended) continue;
      this.apply(execution, { ...next.event, at: this.now });
    }

    const root = this.executions.get(this.rootId)!;
    const context = root.snapshot.context as MachineContext;
    for (const [step, record] of Object.entries(context.steps)) this.result.attempts[step] = record.attempts;
    if (this.rootEnd) {
      this.result.status = this.rootEnd.status;
      this.result.output = this.rootEnd.output;
      this.result.error = this.rootEnd.error;
      this.result.elapsedMs = this.rootEnd.at - simulationStart;
    }
    return this.result;
  }

  private start(
    id: string,
    compiled: CompiledWorkflow,
    machine: AnyStateMachine,
    input: MachineInput,
    parent?: Execution["parent"],
  ) {
    const [snapshot, actions] = initialTransition(machine, input);
    const execution: Execution = {
      id,
      machine,
      compiled,
      snapshot: this.roundTrip(machine, snapshot),
      ended: false,
    };
    if (parent) execution.parent = parent;
    this.executions.set(id, execution);
    this.perform(execution, actions);
  }

  private apply(execution: Execution, event: MachineEvent) {
    const [snapshot, actions] = transition(execution.machine, execution.snapshot, event);
    execution.snapshot = this.roundTrip(execution.machine, snapshot);
    this.perform(execution, actions);
  }

  /** What the orchestrator does between two events: persist as JSON, restore from it. */
  private roundTrip(machine: AnyStateMachine, snapshot: AnyMachineSnapshot): AnyMachineSnapshot {
    if (snapshot.status !== "active") return snapshot;
    const persisted = JSON.parse(
      JSON.stringify({ value: snapshot.value as unknown, context: snapshot.context as unknown }),
    ) as {
      value: AnyMachineSnapshot["value"];
      context: MachineContext;
    };
    return machine.resolveState(persisted);
  }

  private perform(execution: Execution, actions: Action[]) {
    for (const action of actions) {
      if (action.type === "xstate.raise") {
        const params = action.params as { event: MachineEvent; id?: string; delay?: number };
        this.schedule(this.now + (params.delay ?? 0), execution.id, params.event, `timer:${params.id ?? ""}`);
        continue;
      }
      if (action.type === "xstate.cancel") {
        const params = action.params as { sendId: string };
        this.cancel(execution.id, `timer:${params.sendId}`);
        continue;
      }
      if (action.type.startsWith("xstate.")) continue;
      this.carryOut(execution, action as unknown as Command);
    }
  }

  private carryOut(execution: Execution, command: Command) {
    switch (command.type) {
      case "dispatchTask": {
        const task = command.params;
        this.result.calls[task.function] = (this.result.calls[task.function] ?? 0) + 1;
        this.inFlight[task.function] = (this.inFlight[task.function] ?? 0) + 1;
        this.result.maxInFlight[task.function] = Math.max(
          this.result.maxInFlight[task.function] ?? 0,
          this.inFlight[task.function]!,
        );
        const behaviour = this.behaviourOf(task.function, task.attempt);
        const answer: MachineEvent = behaviour.error
          ? {
              type: "task.failed",
              step: task.step,
              run: task.run,
              attempt: task.attempt,
              error: {
                code: behaviour.error.code,
                message: behaviour.error.message ?? behaviour.error.code,
                retryable: behaviour.error.retryable ?? true,
              },
              at: 0,
            }
          : {
              type: "task.succeeded",
              step: task.step,
              run: task.run,
              attempt: task.attempt,
              output: evaluateTemplate(behaviour.output ?? null, { args: task.input }, { now: this.now }),
              at: 0,
            };
        const key = taskKey(execution.id, task.step, task.run, task.attempt);
        this.schedule(
          this.now + (behaviour.delay ? durationMs(behaviour.delay) : 0),
          execution.id,
          answer,
          key,
          task.function,
        );
        return;
      }
      case "cancelTask": {
        const { step, run, attempt } = command.params;
        this.cancel(execution.id, taskKey(execution.id, step, run, attempt));
        return;
      }
      case "startItem": {
        const { step, run, index, item, vars } = command.params;
        const context = execution.snapshot.context as MachineContext;
        const machine = execution.compiled.itemMachines[step];
        if (!machine) throw new Error(`no item machine for map "${step}"`);
        const id = `${execution.id}/${step}#${run}/${index}`;
        this.start(
          id,
          execution.compiled,
          machine,
          {
            input: context.input,
            execution: { ...context.execution, id },
            event: context.event,
            trigger: context.trigger,
            item,
            index,
            steps: context.steps,
            vars,
          },
          { id: execution.id, kind: "item", step, run, index },
        );
        return;
      }
      case "cancelItems":
      case "cancelChild": {
        const { step, run } = command.params;
        for (const other of this.executions.values()) {
          if (
            other.parent?.id === execution.id &&
            other.parent.step === step &&
            other.parent.run === run &&
            !other.ended
          ) {
            this.apply(other, { type: "cancel", at: this.now });
          }
        }
        return;
      }
      case "startChild": {
        const { step, run, workflow, input } = command.params;
        const compiled = this.workflows.get(workflow);
        if (!compiled) {
          const error = { code: "WorkflowNotFound", message: `no workflow "${workflow}"`, retryable: false };
          this.schedule(this.now, execution.id, { type: "child.done", step, run, error, at: 0 });
          return;
        }
        const id = `${execution.id}/${step}#${run}`;
        const checked = compiled.checkInput(input);
        if (!checked.ok) {
          const message = checked.problems.map((problem) => problem.message).join("; ");
          const error = { code: "InputInvalid", message, retryable: false };
          this.schedule(this.now, execution.id, { type: "child.done", step, run, error, at: 0 });
          return;
        }
        this.start(
          id,
          compiled,
          compiled.machine,
          { input: checked.value, execution: { id, workflow, revision: 1, startedAt: this.now } },
          { id: execution.id, kind: "child", step, run },
        );
        return;
      }
      case "emitEvent":
        this.result.emitted.push({ subject: command.params.subject, data: command.params.data });
        return;
      case "subscribe":
      case "unsubscribe":
        return;
      case "record": {
        const record = command.params;
        if (execution.id === this.rootId) {
          this.result.history.push({
            at: this.now,
            type: record.type,
            ...(record.step ? { step: record.step } : {}),
          });
          const outcome = traceOutcomes[record.type as keyof typeof traceOutcomes];
          if (outcome && record.step) this.result.trace.push(`${record.step}:${outcome}`);
        }
        return;
      }
      case "finish": {
        execution.ended = true;
        const { status, output, error } = command.params;
        if (execution.id === this.rootId) {
          this.rootEnd = { status, output, error, at: this.now };
          return;
        }
        const parent = execution.parent!;
        const failure =
          status === "succeeded"
            ? undefined
            : (error ?? { code: "Cancelled", message: status, retryable: false });
        const answer: MachineEvent =
          parent.kind === "item"
            ? {
                type: "item.done",
                step: parent.step,
                run: parent.run,
                index: parent.index!,
                ...(failure ? { error: failure } : { output }),
                at: 0,
              }
            : {
                type: "child.done",
                step: parent.step,
                run: parent.run,
                ...(failure ? { error: failure } : { output }),
                at: 0,
              };
        this.schedule(this.now, parent.id, answer);
        return;
      }
      default: {
        const exhaustive: never = command;
        throw new Error(`unknown command ${JSON.stringify(exhaustive)}`);
      }
    }
  }

  private behaviourOf(name: string, attempt: number): Behaviour {
    const script = this.testCase.functions?.[name];
    if (!script) throw new Error(`the case does not say how function "${name}" behaves`);
    if ("attempts" in script) {
      const behaviours = script.attempts;
      return behaviours[Math.min(attempt, behaviours.length) - 1] ?? {};
    }
    return script;
  }

  private schedule(when: number, execution: string, event: MachineEvent, key?: string, fn?: string) {
    const entry: Queued = { at: when, seq: this.seq++, execution, event };
    if (key) entry.key = key;
    // Keep the queue ordered by time, then by the order things were scheduled.
    let index = this.queue.length;
    while (index > 0 && this.queue[index - 1]!.at > when) index--;
    this.queue.splice(index, 0, entry);
    // A task's answer frees its function's slot when it is delivered or cancelled.
    if (fn) this.taskSlots.set(entry, fn);
  }

  private readonly taskSlots = new Map<Queued, string>();

  private cancel(execution: string, key: string) {
    for (const entry of this.queue) {
      if (entry.execution === execution && entry.key === key && !entry.cancelled) {
        entry.cancelled = true;
        this.release(entry);
      }
    }
  }

  private release(entry: Queued) {
    const fn = this.taskSlots.get(entry);
    if (fn !== undefined) {
      this.inFlight[fn] = (this.inFlight[fn] ?? 1) - 1;
      this.taskSlots.delete(entry);
    }
  }
}

interface Action {
  type: string;
  params: unknown;
}

const traceOutcomes = { StepSucceeded: "succeeded", StepFailed: "failed", StepSkipped: "skipped" } as const;

function at(text: string | undefined): number {
  return simulationStart + (text === undefined ? 0 : durationMs(text));
}

function taskKey(execution: string, step: string, run: number, attempt: number): string {
  return `task:${execution}:${step}:${run}:${attempt}`;
}
