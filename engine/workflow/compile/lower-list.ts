/**
 * Lowers a list of steps: each step becomes a compound state `enter → run → finishing → done`
 * (or `skipped`, or `failing`), wired to the next step, to its `next`, to its `catch` targets,
 * or to the frame's exits. The kind-specific part (`run`) comes from the lowerings in lower-*.ts.
 */
import { assign } from "xstate";
import { stepError, type StepError } from "../../errors.ts";
import { stepKindOf, type CatchClause, type Step } from "../definition.ts";
import { durationMs } from "../duration.ts";
import { evaluateTemplate } from "../expressions.ts";
import { lowerKind } from "./lower-kind.ts";
import {
  attempt,
  bindingsFor,
  command,
  conditionHolds,
  evaluationOptions,
  failWith,
  hasError,
  ids,
  patchPending,
  pendingOf,
  target,
  type Action,
  type Args,
  type Compilation,
  type ListFrame,
  type StateConfig,
  type TransitionConfig,
} from "./lowering.ts";
import type { MachineContext } from "./machine-types.ts";

/** Lowers every step of a list into the states of one compound state. */
export function lowerList(
  steps: Step[],
  frame: ListFrame,
  compilation: Compilation,
): Record<string, StateConfig> {
  const states: Record<string, StateConfig> = {};
  steps.forEach((step, index) => {
    states[step.name] = lowerStep(step, index, steps, frame, compilation);
  });
  return states;
}

function lowerStep(
  step: Step,
  index: number,
  list: Step[],
  frame: ListFrame,
  compilation: Compilation,
): StateConfig {
  const { name } = step;
  const lowered = lowerKind(step, frame, compilation, { index, list });
  const onward = lowered.after ?? onwardTransitions(step, index, list, frame, compilation);
  const timeout =
    stepKindOf(step) === "call" || step.timeout === undefined ? undefined : durationMs(step.timeout);

  const config: StateConfig = {
    id: ids.step(name),
    initial: step.if === undefined ? "run" : "enter",
    entry: [beginRun(name), command("record", { type: "StepScheduled", step: name })],
    states: {
      run: lowered.run,
      finishing: {
        id: ids.finishing(name),
        entry: step.output === undefined ? [] : [applyOutputTemplate(step, frame.scope)],
        always: [{ guard: hasError(name), target: "failing" }, { target: "done" }],
      },
      done: {
        entry: [commitSuccess(name, frame.scope), recordOutcome(name, "StepSucceeded")],
        always: onward,
      },
      failing: {
        id: ids.failing(name),
        entry: [commitFailure(name, frame.scope), recordOutcome(name, "StepFailed")],
        always: [
          ...(step.catch ?? []).flatMap((clause) => catchTransitions(clause, index, list, name, compilation)),
          frame.fail(name),
        ],
      },
    },
  };
  if (step.if !== undefined) {
    const condition = step.if;
    config.states!.enter = {
      entry: [
        patchPending(name, (args) => {
          const outcome = conditionHolds(args, name, frame.scope, condition);
          return outcome.ok ? { skip: !outcome.value } : { error: outcome.error };
        }),
      ],
      always: [
        { guard: hasError(name), target: "failing" },
        { guard: ({ context }) => pendingOf(context, name).skip === true, target: "skipped" },
        { target: "run" },
      ],
    };
    config.states!.skipped = {
      entry: [commitSkip(name, frame.scope), recordOutcome(name, "StepSkipped")],
      always: onwardTransitions(step, index, list, frame, compilation),
    };
  }
  if (timeout !== undefined) {
    const delay = `timeout:${name}`;
    compilation.delays[delay] = () => timeout;
    config.after = {
      [delay]: [
        failWith(name, () => stepError("Timeout", `step "${name}" ran past its timeout of ${step.timeout}`)),
      ],
    };
  }
  return config;
}

/** Where a step goes after it succeeded or was skipped: its `next`, the following step, or the list's exit. */
export function onwardTransitions(
  step: Step,
  index: number,
  list: Step[],
  frame: ListFrame,
  compilation: Compilation,
): TransitionConfig[] {
  if (step.next !== undefined) return jumpTransitions(index, step.next, list, step.name, compilation);
  const following = list[index + 1];
  return following ? [{ target: target(ids.step(following.name)) }] : [frame.exit];
}

/**
 * A jump to `to` in the same list. A jump to the same step or an earlier one is a backward jump:
 * it counts against the execution's budget, and past the budget the execution fails.
 */
export function jumpTransitions(
  fromIndex: number,
  to: string,
  list: Step[],
  from: string,
  compilation: Compilation,
  guard?: TransitionConfig["guard"],
): TransitionConfig[] {
  const toIndex = list.findIndex((step) => step.name === to);
  if (toIndex < 0)
    throw new Error(`"${from}" jumps to unknown step "${to}"; validation should have refused it`);
  const jump: TransitionConfig = { target: target(ids.step(to)), reenter: true };
  if (guard) jump.guard = guard;
  if (toIndex > fromIndex) return [jump];
  const max = compilation.maxBackwardJumps;
  const exhausted: TransitionConfig = {
    guard: (args) => (guard ? guard(args) : true) && args.context.jumps >= max,
    target: target(ids.failed),
    actions: [
      assign({
        error: () =>
          stepError(
            "StepBudgetExceeded",
            `the execution took more than ${max} backward jumps (last: "${from}" → "${to}"); is a loop missing its exit?`,
          ),
      }),
    ],
  };
  return [exhausted, { ...jump, actions: [assign({ jumps: ({ context }: Args) => context.jumps + 1 })] }];
}

function catchTransitions(
  clause: CatchClause,
  fromIndex: number,
  list: Step[],
  step: string,
  compilation: Compilation,
): TransitionConfig[] {
  const { errors } = clause;
  const matches = ({ context }: Args) =>
    errors === undefined || errors.includes(context.steps[step]?.error ? errorCode(context, step) : "");
  return jumpTransitions(fromIndex, clause.next, list, step, compilation, matches);
}

function errorCode(context: MachineContext, step: string): string {
  const error = context.steps[step]?.error as StepError | null | undefined;
  return error?.code ?? "";
}

/** Starts a new run of the step: a fresh execution-wide run number, no leftovers of earlier runs. */
function beginRun(step: string): Action {
  return assign(({ context }: Args) => ({
    runs: context.runs + 1,
    pending: { ...context.pending, [step]: { run: context.runs + 1, attempt: 0 } },
  }));
}

function applyOutputTemplate(step: Step, scope: string): Action {
  const template = step.output!;
  return patchPending(step.name, (args) => {
    const result = pendingOf(args.context, step.name).result ?? null;
    const outcome = attempt(() =>
      evaluateTemplate(
        template,
        bindingsFor(args.context, scope, { result }),
        evaluationOptions(args, step.name),
      ),
    );
    return outcome.ok ? { result: outcome.value } : { error: outcome.error };
  });
}

function commit(
  step: string,
  scope: string,
  record: (context: MachineContext) => { output: unknown; error: unknown },
  { passesOutputOn = true } = {},
) {
  return assign(({ context }: Args) => {
    const pending = pendingOf(context, step);
    const { output, error } = record(context);
    // Keep what later routing may read (the run, the attempts, the branch taken); drop the payloads.
    const kept = {
      run: pending.run,
      attempt: pending.attempt,
      ...(pending.branch === undefined ? {} : { branch: pending.branch }),
    };
    // The join state of a `map` or `parallel` has served its purpose: the output carries it on.
    const { [step]: _map, ...maps } = context.maps;
    const { [step]: _branches, ...branches } = context.branches;
    return {
      maps,
      branches,
      steps: {
        ...context.steps,
        [step]: { output: output as never, error: error as never, attempts: Math.max(pending.attempt, 1) },
      },
      last: passesOutputOn ? { ...context.last, [scope]: output as never } : context.last,
      pending: { ...context.pending, [step]: kept },
    };
  });
}

function commitSuccess(step: string, scope: string): Action {
  // A `map` that tolerated failures succeeds and still shows them at `$steps.<map>.error`.
  return commit(step, scope, (context) => {
    const pending = pendingOf(context, step);
    return { output: pending.result ?? null, error: pending.toleratedError ?? null };
  });
}

function commitSkip(step: string, scope: string): Action {
  return commit(step, scope, () => ({ output: null, error: null }));
}

/**
 * A failed step leaves "the previous output" as it was: a `catch` target, or the same step run
 * again by a retry of the execution, gets the input the failed step had.
 */
function commitFailure(step: string, scope: string): Action {
  return commit(step, scope, (context) => ({ output: null, error: pendingOf(context, step).error ?? null }), {
    passesOutputOn: false,
  });
}

function recordOutcome(step: string, type: "StepSucceeded" | "StepFailed" | "StepSkipped"): Action {
  // Runs after the commit, so it reads the committed record.
  return {
    type: "record",
    params: ({ context }: Args) => {
      const record = context.steps[step];
      const data = type === "StepFailed" ? { error: record?.error ?? null } : undefined;
      return { type, step, attempt: record?.attempts, ...(data ? { data } : {}) };
    },
  };
}
