/** The steps that only move data: `set`, `return` and `fail`. */
import { assign } from "xstate";
import type { Json, ReturnStep, SetStep, FailStep } from "../definition.ts";
import { evaluateString, toText } from "../expressions.ts";
import {
  attempt,
  bindingsFor,
  evaluateIntoPending,
  evaluationOptions,
  hasError,
  ids,
  patchPending,
  pendingOf,
  target,
  type Args,
  type ListFrame,
  type LoweredKind,
} from "./lowering.ts";

const settle = (step: string) => [
  { guard: hasError(step), target: target(ids.failing(step)) },
  { target: target(ids.finishing(step)) },
];

/** `set`: evaluates every value first, then assigns them all into the scope's `$vars`. */
export function lowerSet(step: SetStep, frame: ListFrame): LoweredKind {
  const { name } = step;
  return {
    run: {
      entry: [
        evaluateIntoPending(name, frame.scope, step.set, "input"),
        assign(({ context }: Args) => {
          const pending = pendingOf(context, name);
          if (pending.error) return {};
          const vars = { ...(context.vars[frame.scope] ?? {}), ...(pending.input as Record<string, Json>) };
          return {
            vars: { ...context.vars, [frame.scope]: vars },
            pending: { ...context.pending, [name]: { ...pending, result: vars } },
          };
        }),
      ],
      always: settle(name),
    },
  };
}

/** `return`: ends the enclosing list (the execution, a map item or a branch) with a value. */
export function lowerReturn(step: ReturnStep, frame: ListFrame): LoweredKind {
  const { name } = step;
  return {
    run: { entry: [evaluateIntoPending(name, frame.scope, step.return, "result")], always: settle(name) },
    after: [frame.ret(name)],
  };
}

/** `fail`: fails with the given code; the message may interpolate expressions. Never retried. */
export function lowerFail(step: FailStep, frame: ListFrame): LoweredKind {
  const { name } = step;
  const { error: code, message } = step.fail;
  return {
    run: {
      entry: [
        patchPending(name, (args) => {
          const outcome = attempt(() =>
            message === undefined
              ? `step "${name}" failed with ${code}`
              : toText(
                  evaluateString(
                    message,
                    bindingsFor(args.context, frame.scope),
                    evaluationOptions(args, name),
                  ),
                ),
          );
          if (!outcome.ok) return { error: outcome.error };
          return { error: { code, message: outcome.value, retryable: false } };
        }),
      ],
      always: [{ target: target(ids.failing(name)) }],
    },
  };
}
