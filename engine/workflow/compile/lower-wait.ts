/**
 * `wait`: a durable sleep. The machine names the delay; the driver arms a durable timer for it
 * (xstate's `after` comes back from `transition()` as an `xstate.raise` action with `delay`).
 * `until` is evaluated when the step starts and measured against that event's time.
 */
import { stepError } from "../../errors.ts";
import type { WaitStep } from "../definition.ts";
import { durationMs } from "../duration.ts";
import { evaluateString } from "../expressions.ts";
import {
  attempt,
  bindingsFor,
  evaluationOptions,
  finishWith,
  unlessFailed,
  nowOf,
  patchPending,
  pendingOf,
  type Compilation,
  type ListFrame,
  type LoweredKind,
} from "./lowering.ts";

export function lowerWait(step: WaitStep, frame: ListFrame, compilation: Compilation): LoweredKind {
  const { name } = step;
  const delay = `wait:${name}`;
  const { wait } = step;

  if (typeof wait === "string") {
    const ms = durationMs(wait);
    compilation.delays[delay] = () => ms;
    return { run: { after: { [delay]: [finishWith(name, () => null)] } } };
  }

  // `pending.input` holds the deadline (epoch ms); the delay is what is left of it when the step starts.
  compilation.delays[delay] = (args) =>
    Math.max(0, (pendingOf(args.context, name).input as number) - nowOf(args));
  return {
    run: {
      initial: "prepare",
      states: {
        prepare: {
          entry: [
            patchPending(name, (args) => {
              const outcome = attempt(() =>
                evaluateString(
                  wait.until,
                  bindingsFor(args.context, frame.scope),
                  evaluationOptions(args, name),
                ),
              );
              if (!outcome.ok) return { error: outcome.error };
              const deadline = typeof outcome.value === "string" ? Date.parse(outcome.value) : Number.NaN;
              if (Number.isNaN(deadline)) {
                return {
                  error: stepError(
                    "ExpressionError",
                    `wait "${name}": until must be an ISO 8601 time, got ${JSON.stringify(outcome.value)}`,
                  ),
                };
              }
              return { input: deadline };
            }),
          ],
          always: unlessFailed(name, { target: "sleeping" }),
        },
        sleeping: { after: { [delay]: [finishWith(name, () => null)] } },
      },
    },
  };
}
