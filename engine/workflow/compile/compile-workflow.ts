/**
 * Compiles a checked workflow definition into xstate v5 machines: one for the workflow, one for
 * the body of each `map` (each item runs it as an execution of its own). Pure: no I/O, no
 * clock, no randomness; the same definition gives machines that make the same decisions.
 *
 * Machine layout:
 *
 *   wf ─ running ─ <step> … <step> ─ completing ─► succeeded
 *      │    (after: execution timeout ─► timed-out; on cancel ─► cancelled)
 *      └─ failed · cancelled · timed-out     (all final; each names the `finish` command)
 *
 * The machines name their side effects (`dispatchTask`, `startItem`, `emitEvent`, `record`, …:
 * see machine-types.ts) and never carry them out: `transition()` returns them, and the driver
 * (the orchestrator, or a test's simulator) performs them after persisting the new snapshot.
 */
import { assign, setup, type AnyStateMachine } from "xstate";
import { stepError } from "../../errors.ts";
import type { Json, Step, WorkflowDefinition } from "../definition.ts";
import { durationMs } from "../duration.ts";
import { evaluateTemplate } from "../expressions.ts";
import { compileInputCheck, type InputCheck } from "../input-schema.ts";
import { lowerList } from "./lower-list.ts";
import { keepInInbox } from "./lower-receive.ts";
import {
  attempt,
  bindingsFor,
  command,
  committedError,
  ids,
  nowOf,
  target,
  type Action,
  type Args,
  type Compilation,
  type CompileOptions,
  type ListFrame,
  type StateConfig,
} from "./lowering.ts";
import {
  commandTypes,
  type ExecutionStatus,
  type MachineContext,
  type MachineInput,
} from "./machine-types.ts";

export const defaultMaxBackwardJumps = 10_000;
export const defaultExecutionTimeoutMs = 24 * 3_600_000;

export interface CompiledWorkflow {
  definition: WorkflowDefinition;
  /** The workflow's machine. */
  machine: AnyStateMachine;
  /** The machine each item of a `map` runs, by the map step's name. */
  itemMachines: Record<string, AnyStateMachine>;
  /** Checks an execution input against the workflow's `input` schema and fills in its defaults. */
  checkInput: (input: Json) => InputCheck;
  /** Names of the `call` steps with `effect: true`, at any depth. */
  effectSteps: ReadonlySet<string>;
  /** The function each `call` step calls, by step name, at any depth. */
  callSteps: ReadonlyMap<string, string>;
}

export function compileWorkflow(
  definition: WorkflowDefinition,
  options: CompileOptions = {},
): CompiledWorkflow {
  const compilation: Compilation = {
    definition,
    maxBackwardJumps: options.maxBackwardJumps ?? defaultMaxBackwardJumps,
    delays: {},
    itemBodies: {},
  };
  const executionTimeoutMs =
    definition.timeout === undefined ? defaultExecutionTimeoutMs : durationMs(definition.timeout);
  const machine = buildMachine(definition.steps, compilation, {
    id: definition.name,
    output: definition.output,
    executionTimeoutMs,
  });
  // Map bodies are registered while lowering (nested maps register while lowering their parent body).
  const itemMachines: Record<string, AnyStateMachine> = {};
  const lowered = new Set<string>();
  for (let pending = Object.keys(compilation.itemBodies); pending.length > 0;) {
    for (const step of pending) {
      lowered.add(step);
      itemMachines[step] = buildMachine(compilation.itemBodies[step]!, compilation, {
        id: `${definition.name}.${step}`,
      });
    }
    pending = Object.keys(compilation.itemBodies).filter((step) => !lowered.has(step));
  }
  return {
    definition,
    machine,
    itemMachines,
    checkInput: compileInputCheck(definition),
    effectSteps: new Set(
      allSteps(definition.steps).flatMap((step) => ("call" in step && step.effect ? [step.name] : [])),
    ),
    callSteps: new Map(
      allSteps(definition.steps).flatMap((step) => ("call" in step ? [[step.name, step.call] as const] : [])),
    ),
  };
}

/** Every step of a list and of the lists nested in it. */
function allSteps(steps: Step[]): Step[] {
  return steps.flatMap((step) => {
    const nested: Step[][] = [];
    if ("switch" in step) for (const branch of step.switch) if (branch.steps) nested.push(branch.steps);
    if ("parallel" in step) nested.push(...Object.values(step.parallel.branches));
    if ("map" in step) nested.push(step.map.steps);
    return [step, ...nested.flatMap(allSteps)];
  });
}

interface MachineShape {
  id: string;
  /** The workflow's `output` template; map bodies have none. */
  output?: Json | undefined;
  /** Only the workflow itself has a deadline; an item lives within its map step's. */
  executionTimeoutMs?: number;
}

function buildMachine(steps: Step[], compilation: Compilation, shape: MachineShape): AnyStateMachine {
  const frame: ListFrame = {
    scope: "",
    exit: { target: target(ids.completing) },
    ret: (step) => ({
      target: target(ids.completing),
      actions: [
        assign({ returned: ({ context }: Args) => ({ value: context.steps[step]?.output ?? null }) }),
      ],
    }),
    fail: (step) => ({
      target: target(ids.failed),
      actions: [assign({ error: ({ context }: Args) => committedError(context, step), failedStep: step })],
    }),
  };
  const stepStates = lowerList(steps, frame, compilation);

  const running: StateConfig = {
    initial: steps[0]!.name,
    states: {
      ...stepStates,
      // `__` cannot start a step name, so these never collide with one.
      __completing: {
        id: ids.completing,
        entry: [completeOutput(shape.output)],
        always: [
          { guard: ({ context }) => context.error !== null, target: target(ids.failed) },
          { target: target(ids.succeeded) },
        ],
      },
    },
    on: {
      cancel: [{ target: target(ids.cancelled) }],
      signal: [{ actions: [keepInInbox] }],
      message: [{ actions: [keepInInbox] }],
    },
  };
  if (shape.executionTimeoutMs !== undefined) {
    const timeoutMs = shape.executionTimeoutMs;
    compilation.delays["execution-timeout"] = () => timeoutMs;
    running.after = { "execution-timeout": [{ target: target(ids.timedOut) }] };
  }

  const config = {
    id: shape.id,
    initial: "running",
    entry: [command("record", { type: "ExecutionStarted" })],
    context: ({ input }: { input: MachineInput }) => initialContext(input),
    states: {
      running,
      succeeded: ending(ids.succeeded, "succeeded"),
      failed: retryable(ending(ids.failed, "failed"), steps),
      cancelled: {
        ...ending(ids.cancelled, "cancelled"),
        entry: [
          assign({
            error: ({ event }: Args) =>
              stepError(
                "Cancelled",
                event.type === "cancel" && event.reason ? event.reason : "the execution was cancelled",
              ),
          }),
          ...ending(ids.cancelled, "cancelled").entry!,
        ],
      },
      "timed-out": {
        ...ending(ids.timedOut, "timed_out"),
        entry: [
          assign({ error: () => stepError("Timeout", `the execution ran past its timeout`) }),
          ...ending(ids.timedOut, "timed_out").entry!,
        ],
      },
    },
    output: ({ context }: { context: MachineContext }) => ({ output: context.output, error: context.error }),
  };

  const noop = () => undefined;
  return setup({
    types: {},
    actions: Object.fromEntries(commandTypes.map((type) => [type, noop])),
    delays: compilation.delays,
  }).createMachine(config as never) as unknown as AnyStateMachine;
}

const historyOfStatus = {
  succeeded: "ExecutionSucceeded",
  failed: "ExecutionFailed",
  cancelled: "ExecutionCancelled",
  timed_out: "ExecutionTimedOut",
} as const;

function ending(id: string, status: ExecutionStatus): StateConfig {
  return {
    id,
    type: "final",
    entry: [
      {
        type: "record",
        params: ({ context }: Args) => ({
          type: historyOfStatus[status],
          ...(context.error ? { data: { error: context.error } } : {}),
        }),
      },
      {
        type: "finish",
        params: ({ context }: Args) => ({
          status,
          output: status === "succeeded" ? context.output : null,
          error: context.error,
        }),
      },
    ],
  };
}

/**
 * A failed execution is not final: a `retry` event re-runs it from the step that failed (the
 * top-level step whose failure no `catch` handled), with every finished step's result kept.
 * The backward-jump budget starts afresh.
 */
function retryable(failed: StateConfig, steps: Step[]): StateConfig {
  const { type: _final, ...rest } = failed;
  return {
    ...rest,
    on: {
      retry: steps.map((step) => ({
        guard: ({ context }: Args) => context.failedStep === step.name,
        target: target(ids.step(step.name)),
        actions: [
          assign({ error: null, failedStep: null, jumps: 0, output: null }),
          command("record", { type: "ExecutionRetried", step: step.name }),
        ],
      })),
    },
  };
}

/** The execution's output: a top-level `return`, else the `output` template, else the last step's output. */
function completeOutput(template: Json | undefined): Action {
  return assign(({ context, event }: Args) => {
    if (context.returned) return { output: context.returned.value };
    if (template === undefined) return { output: context.last[""] ?? null };
    const outcome = attempt(() =>
      evaluateTemplate(template, bindingsFor(context, ""), {
        now: nowOf({ context, event }),
        seed: `${context.execution.id}:output`,
      }),
    );
    return outcome.ok ? { output: outcome.value } : { error: outcome.error };
  });
}

export function initialContext(input: MachineInput): MachineContext {
  const isItem = input.index !== undefined;
  return {
    input: input.input,
    execution: input.execution,
    event: input.event ?? null,
    trigger: input.trigger ?? null,
    item: input.item ?? null,
    index: input.index ?? null,
    steps: { ...(input.steps ?? {}) },
    vars: { "": { ...(input.vars ?? {}) } },
    // The first step's default input: the item in a map body, else the execution input.
    last: { "": isItem ? (input.item ?? null) : input.input },
    runs: 0,
    jumps: 0,
    pending: {},
    inbox: [],
    branches: {},
    maps: {},
    returned: null,
    output: null,
    error: null,
    failedStep: null,
  };
}
