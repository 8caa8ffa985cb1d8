/**
 * `call`: dispatch a task to a function worker, one attempt at a time.
 *
 * run: prepare ─► attempt ─(task.succeeded)─► finishing
 *                    │ (task.failed | attempt timeout)
 *                    ▼
 *                  failed ─(retry allowed)─► backoff ─(delay)─► attempt
 *                    └─(otherwise)─► failing
 *
 * The input is evaluated once per step run, so every attempt sends the same input. Leaving
 * `attempt` for any reason but the task's own answer (timeout, cancel, a failing sibling branch)
 * cancels the task.
 */
import { stepError } from "../../errors.ts";
import type { CallStep } from "../definition.ts";
import { durationMs } from "../duration.ts";
import { resolveRetry, retryDelayMs, shouldRetry } from "./retry-policy.ts";
import {
  answersRun,
  command,
  evaluateIntoPending,
  unlessFailed,
  ids,
  patchPending,
  pendingOf,
  target,
  type Args,
  enqueueing,
  type EnqueueArgs,
  type Compilation,
  type ListFrame,
  type LoweredKind,
} from "./lowering.ts";

/** Per-attempt timeout when a `call` names none. */
export const defaultCallTimeoutMs = 5 * 60_000;

export function lowerCall(step: CallStep, frame: ListFrame, compilation: Compilation): LoweredKind {
  const { name } = step;
  const policy = resolveRetry(compilation.definition.retry, step.retry);
  const timeoutMs = step.timeout === undefined ? defaultCallTimeoutMs : durationMs(step.timeout);
  const effect = step.effect === true;
  const attemptTimeout = `attempt-timeout:${name}`;
  const retryDelay = `retry:${name}`;
  compilation.delays[attemptTimeout] = () => timeoutMs;
  compilation.delays[retryDelay] = ({ context }) => {
    const pending = pendingOf(context, name);
    return retryDelayMs(
      policy,
      pending.attempt,
      `${context.execution.id}:${name}:${pending.run}:${pending.attempt}`,
    );
  };
  const answersAttempt = (args: Args) =>
    answersRun(name, args) &&
    "attempt" in args.event &&
    args.event.attempt === pendingOf(args.context, name).attempt;

  return {
    run: {
      initial: "prepare",
      entry: [evaluateIntoPending(name, frame.scope, step.with, "input")],
      states: {
        prepare: {
          always: unlessFailed(name, { target: "attempt" }),
        },
        attempt: {
          entry: [
            enqueueing(({ context, enqueue }: EnqueueArgs) => {
              const pending = pendingOf(context, name);
              const attempt = pending.attempt + 1;
              enqueue.assign({
                pending: { ...context.pending, [name]: { ...pending, attempt, inFlight: true } },
              });
              enqueue(
                command("dispatchTask", {
                  step: name,
                  run: pending.run,
                  attempt,
                  function: step.call,
                  input: pending.input ?? null,
                  effect,
                  ...(effect ? { idempotencyKey: `${context.execution.id}/${name}/${pending.run}` } : {}),
                  timeoutMs,
                }),
              );
            }),
          ],
          exit: [
            enqueueing(({ context, event, enqueue }: EnqueueArgs) => {
              const pending = pendingOf(context, name);
              if (pending.inFlight && !answersAttempt({ context, event })) {
                enqueue(command("cancelTask", { step: name, run: pending.run, attempt: pending.attempt }));
              }
            }),
            patchPending(name, () => ({ inFlight: false })),
          ],
          after: {
            [attemptTimeout]: [
              {
                target: "failed",
                actions: [
                  // The engine marks the timeout `unavailable` when no live worker serves the function.
                  patchPending(name, ({ event }) => ({
                    error:
                      (event as { unavailable?: boolean }).unavailable === true
                        ? stepError(
                            "FunctionUnavailable",
                            `no worker serves "${step.call}": the attempt waited ${step.timeout ?? "5m"} with nobody to take it`,
                          )
                        : stepError(
                            "Timeout",
                            `attempt ran past the step's timeout of ${step.timeout ?? "5m"}`,
                          ),
                  })),
                ],
              },
            ],
          },
          on: {
            "task.succeeded": [
              {
                guard: answersAttempt,
                target: target(ids.finishing(name)),
                actions: [
                  patchPending(name, ({ event }) => ({ result: "output" in event ? event.output : null })),
                ],
              },
            ],
            "task.failed": [
              {
                guard: answersAttempt,
                target: "failed",
                actions: [
                  patchPending(name, ({ event }) =>
                    "error" in event && event.error ? { error: event.error } : {},
                  ),
                ],
              },
            ],
          },
        },
        failed: {
          always: [
            {
              guard: ({ context }) => {
                const pending = pendingOf(context, name);
                return pending.error !== undefined && shouldRetry(policy, pending.attempt, pending.error);
              },
              target: "backoff",
              actions: [
                {
                  type: "record",
                  params: ({ context }: Args) => {
                    const pending = pendingOf(context, name);
                    return {
                      type: "RetryScheduled",
                      step: name,
                      attempt: pending.attempt,
                      data: { error: pending.error ?? null },
                    };
                  },
                },
                patchPending(name, () => ({ error: undefined })),
              ],
            },
            { target: target(ids.failing(name)) },
          ],
        },
        backoff: {
          after: { [retryDelay]: [{ target: "attempt" }] },
        },
      },
    },
  };
}
