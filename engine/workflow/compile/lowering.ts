/**
 * What every lowering shares: the shape of the xstate config it produces, the frame a step list
 * is lowered in, and small context helpers. The lowerings build plain config objects; xstate's
 * `setup()` turns them into a machine in compile-workflow.ts.
 */
import { assign, enqueueActions } from "xstate";
import { stepError, type StepError } from "../../errors.ts";
import type { Json, Step, Template, WorkflowDefinition } from "../definition.ts";
import {
  evaluateCondition,
  evaluateTemplate,
  ExpressionError,
  type Bindings,
  type EvaluationOptions,
} from "../expressions.ts";
import type {
  CommandParams,
  CommandType,
  MachineContext,
  MachineEvent,
  PendingStep,
} from "./machine-types.ts";

export interface Args {
  context: MachineContext;
  event: MachineEvent;
}
export type Guard = (args: Args) => boolean;
/** An action as xstate takes it: a built-in action object, or a named command with params. */
export type Action = unknown;

export interface TransitionConfig {
  target?: string;
  guard?: Guard;
  actions?: Action[];
  reenter?: boolean;
}

export interface StateConfig {
  id?: string;
  type?: "parallel" | "final";
  initial?: string;
  states?: Record<string, StateConfig>;
  entry?: Action[];
  exit?: Action[];
  always?: TransitionConfig[];
  on?: Record<string, TransitionConfig[]>;
  after?: Record<string, TransitionConfig[]>;
  onDone?: TransitionConfig[];
}

export type Enqueue = ((action: unknown) => void) & { assign: (patch: object) => void };
export type EnqueueArgs = Args & { enqueue: Enqueue };

export type DelayFn = (args: Args) => number;

export interface CompileOptions {
  /** Backward `next` jumps an execution may take before it fails with StepBudgetExceeded. */
  maxBackwardJumps?: number;
}

/** State shared by the lowerings of one workflow. */
export interface Compilation {
  definition: WorkflowDefinition;
  maxBackwardJumps: number;
  /** Named delays for xstate `after`, registered by the lowerings (step names are unique, so are these). */
  delays: Record<string, DelayFn>;
  /** Map bodies, lowered into machines of their own (see lower-map.ts). */
  itemBodies: Record<string, Step[]>;
}

/**
 * Where a step list leads. Each exit reads what it needs from the context when taken, so the
 * same frame serves every step of the list.
 */
export interface ListFrame {
  /** Scope of `$vars` and of "the previous step's output". */
  scope: string;
  /** Taken after the list's last step. */
  exit: TransitionConfig;
  /** Taken when `step` failed and no `catch` of its own handled it. */
  fail: (step: string) => TransitionConfig;
  /** Taken when the `return` step `step` finished. */
  ret: (step: string) => TransitionConfig;
}

/** Where a step stands: its list and its position in it (for jumps). */
export interface StepPlace {
  index: number;
  list: Step[];
}

/** What a kind's lowering gives the step wrapper. */
export interface LoweredKind {
  /** The `run` state of the step. It ends by targeting {@link ids.finishing} or {@link ids.failing}. */
  run: StateConfig;
  /** Replaces the usual "go to `next` or the following step" after success (switch jumps, return). */
  after?: TransitionConfig[];
}

/** State ids are `#`-addressable; step names are unique in a workflow, so these are too. */
export const ids = {
  step: (name: string) => `s-${name}`,
  finishing: (name: string) => `s-${name}-finishing`,
  failing: (name: string) => `s-${name}-failing`,
  completing: "wf-completing",
  succeeded: "wf-succeeded",
  failed: "wf-failed",
  cancelled: "wf-cancelled",
  timedOut: "wf-timed-out",
} as const;
export const target = (id: string) => `#${id}`;

/** A named command with resolved params, as an xstate action object. */
export function command<K extends CommandType>(
  type: K,
  params: CommandParams[K],
): { type: K; params: CommandParams[K] } {
  return { type, params };
}

/** The logical time of the event being applied. */
export function nowOf({ context, event }: Args): number {
  return "at" in event && typeof event.at === "number" ? event.at : context.execution.startedAt;
}

export function pendingOf(context: MachineContext, step: string): PendingStep {
  const pending = context.pending[step];
  if (!pending) throw new Error(`step "${step}" is not running`);
  return pending;
}

/** Assigns a patch to one step's pending state. */
export function patchPending(step: string, patch: (args: Args) => Partial<PendingStep>): Action {
  return assign(({ context, event }: Args) => ({
    pending: { ...context.pending, [step]: { ...pendingOf(context, step), ...patch({ context, event }) } },
  }));
}

/** Expression bindings for a step in a scope. */
export function bindingsFor(context: MachineContext, scope: string, extra?: Partial<Bindings>): Bindings {
  return {
    input: context.input,
    steps: context.steps,
    vars: context.vars[scope] ?? {},
    item: context.item,
    index: context.index ?? undefined,
    event: context.event,
    trigger: context.trigger,
    execution: context.execution as unknown as Json,
    ...extra,
  };
}

export function evaluationOptions(args: Args, step: string): EvaluationOptions {
  const pending = args.context.pending[step];
  return { now: nowOf(args), seed: `${args.context.execution.id}:${step}:${pending?.run ?? 0}` };
}

/** Runs an evaluation, turning expression failures into the step error `ExpressionError`. */
export function attempt<T>(evaluate: () => T): { ok: true; value: T } | { ok: false; error: StepError } {
  try {
    return { ok: true, value: evaluate() };
  } catch (error) {
    if (error instanceof ExpressionError)
      return { ok: false, error: stepError("ExpressionError", error.message) };
    throw error;
  }
}

/** Evaluates a step's template in its scope; the result lands in `pending.input`, or the error in `pending.error`. */
export function evaluateIntoPending(
  step: string,
  scope: string,
  template: Template | undefined,
  field: "input" | "result",
): Action {
  return patchPending(step, (args) => {
    const bindings = bindingsFor(args.context, scope);
    const outcome = attempt(() =>
      template === undefined
        ? (args.context.last[scope] ?? null)
        : evaluateTemplate(template, bindings, evaluationOptions(args, step)),
    );
    return outcome.ok ? { [field]: outcome.value } : { error: outcome.error };
  });
}

export function conditionHolds(
  args: Args,
  step: string,
  scope: string,
  text: string,
  extra?: Partial<Bindings>,
) {
  return attempt(() =>
    evaluateCondition(text, bindingsFor(args.context, scope, extra), evaluationOptions(args, step)),
  );
}

export const hasError =
  (step: string): Guard =>
  ({ context }) =>
    context.pending[step]?.error !== undefined;

/** To the step's failing state when an evaluation left an error, else on to `next`. */
export function unlessFailed(step: string, ...next: TransitionConfig[]): TransitionConfig[] {
  return [{ guard: hasError(step), target: target(ids.failing(step)) }, ...next];
}

/** Moves the step to its failing state with `error`. */
export function failWith(step: string, error: (args: Args) => StepError): TransitionConfig {
  return {
    target: target(ids.failing(step)),
    actions: [patchPending(step, (args) => ({ error: error(args) }))],
  };
}

/** Moves the step to its finishing state with `result`. */
export function finishWith(step: string, result: (args: Args) => Json): TransitionConfig {
  return {
    target: target(ids.finishing(step)),
    actions: [patchPending(step, (args) => ({ result: result(args) }))],
  };
}

/** Whether an event answers this step's current run (stale answers from earlier runs are ignored). */
export function answersRun(step: string, args: Args): boolean {
  const { event } = args;
  const pending = args.context.pending[step];
  return (
    pending !== undefined &&
    "step" in event &&
    "run" in event &&
    event.step === step &&
    event.run === pending.run
  );
}

/** `enqueueActions` with the machine's own types: assign and name commands from one function. */
export function enqueueing(collect: (args: EnqueueArgs) => void): Action {
  return enqueueActions(collect as never);
}

/** The error a committed step failed with (also set for a `map` that tolerated failures). */
export function committedError(context: MachineContext, step: string): StepError | null {
  return (context.steps[step]?.error ?? null) as unknown as StepError | null;
}

/** Emits a command only when a condition holds at the time the action runs. */
export function commandWhen<K extends CommandType>(
  condition: (args: Args) => boolean,
  type: K,
  params: (args: Args) => CommandParams[K],
): Action {
  return enqueueing(({ context, event, enqueue }) => {
    if (condition({ context, event })) enqueue(command(type, params({ context, event })));
  });
}
