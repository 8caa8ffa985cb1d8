/**
 * `map`: fan out over a list, then join. Each item runs the map's steps as an execution of its
 * own (a machine compiled from the body: see compile-workflow.ts), so an item's state never
 * grows the parent's snapshot beyond its result, and 10,000 items are 10,000 small executions.
 * The parent keeps the join: how many items are out, done and failed. Their results stay in the
 * items' records until the join, where the engine reads them all once and hands them to the answer
 * that completes it (`ItemDone.results`): the parent's record, written on every batch of answers,
 * does not grow with them.
 */
import { assign } from "xstate";
import { stepError, type StepError } from "../../errors.ts";
import type { Json, MapStep } from "../definition.ts";
import { evaluateTemplate } from "../expressions.ts";
import {
  answersRun,
  attempt,
  bindingsFor,
  command,
  evaluationOptions,
  unlessFailed,
  ids,
  patchPending,
  pendingOf,
  target,
  type Args,
  type Compilation,
  enqueueing,
  type EnqueueArgs,
  type ListFrame,
  type LoweredKind,
} from "./lowering.ts";
import type { MachineContext, MapProgress } from "./machine-types.ts";

export const defaultConcurrency = 100;

export function lowerMap(step: MapStep, frame: ListFrame, compilation: Compilation): LoweredKind {
  const { name } = step;
  const concurrency = step.map.concurrency ?? defaultConcurrency;
  const tolerate = step.map.tolerate ?? 0;
  compilation.itemBodies[name] = step.map.steps;
  const progressOf = (context: MachineContext): MapProgress => context.maps[name]!;
  /** An answer for an item of this run that is still out (a duplicate answer is ignored). */
  const itemIsMine = (args: Args) =>
    answersRun(name, args) &&
    args.event.type === "item.done" &&
    (args.context.maps[name]?.outstanding.includes(args.event.index) ?? false);

  /** Starts items while there is room; run after every change of the join state. */
  const launch = enqueueing(({ context, enqueue }: EnqueueArgs) => {
    const progress = progressOf(context);
    let { next, inFlight } = progress;
    const outstanding = [...progress.outstanding];
    const failedTooOften = progress.failures.length > progress.tolerate;
    while (!failedTooOften && inFlight < progress.concurrency && next < progress.items.length) {
      const item = progress.items[next] ?? null;
      enqueue(
        command("startItem", {
          step: name,
          run: progress.run,
          index: next,
          item,
          vars: context.vars[frame.scope] ?? {},
        }),
      );
      outstanding.push(next);
      next++;
      inFlight++;
    }
    enqueue.assign({ maps: { ...context.maps, [name]: { ...progress, next, inFlight, outstanding } } });
  });

  return {
    run: {
      initial: "prepare",
      states: {
        prepare: {
          entry: [
            patchPending(name, (args) => {
              const { items } = step.map;
              const outcome = attempt(() =>
                typeof items === "string"
                  ? evaluateTemplate(
                      items,
                      bindingsFor(args.context, frame.scope),
                      evaluationOptions(args, name),
                    )
                  : items,
              );
              if (!outcome.ok) return { error: outcome.error };
              if (!Array.isArray(outcome.value)) {
                return {
                  error: stepError(
                    "ExpressionError",
                    `map "${name}": items must be a list, got ${outcome.value === null ? "nothing" : typeof outcome.value} (JSONata unwraps a one-item result: write \`[ ... ]\` around the expression to always get a list)`,
                  ),
                };
              }
              return { input: outcome.value };
            }),
            assign(({ context }: Args) => {
              const pending = pendingOf(context, name);
              const items = Array.isArray(pending.input) ? pending.input : [];
              const progress: MapProgress = {
                run: pending.run,
                items,
                concurrency,
                tolerate,
                next: 0,
                inFlight: 0,
                outstanding: [],
                done: 0,
                failures: [],
              };
              return { maps: { ...context.maps, [name]: progress } };
            }),
          ],
          always: unlessFailed(name, { target: "active" }),
        },
        active: {
          entry: [launch],
          // The join state is dropped when the step commits (lower-list.ts).
          exit: [
            enqueueing(({ context, enqueue }: EnqueueArgs) => {
              const progress = progressOf(context);
              if (progress.outstanding.length === 0) return;
              enqueue(
                command("cancelItems", { step: name, run: progress.run, indices: progress.outstanding }),
              );
            }),
          ],
          on: {
            "item.done": [
              {
                guard: itemIsMine,
                actions: [
                  assign(({ context, event }: Args) => {
                    if (event.type !== "item.done") return {};
                    const progress = progressOf(context);
                    // A join begun by an earlier version keeps each result as it comes, in place:
                    // the snapshot is owned by this transition, and copying a 10,000-item array
                    // per answer would make the join quadratic.
                    if (progress.results && !event.results)
                      progress.results[event.index] = event.error ? null : (event.output ?? null);
                    const results = event.results ?? progress.results;
                    const failures = event.error
                      ? [...progress.failures, { index: event.index, error: event.error }]
                      : progress.failures;
                    return {
                      maps: {
                        ...context.maps,
                        [name]: {
                          ...progress,
                          ...(results ? { results } : {}),
                          inFlight: progress.inFlight - 1,
                          outstanding: progress.outstanding.filter((index) => index !== event.index),
                          done: progress.done + 1,
                          failures,
                        },
                      },
                    };
                  }),
                  launch,
                ],
              },
            ],
          },
          always: [
            {
              guard: ({ context }) => progressOf(context).failures.length > tolerate,
              target: target(ids.failing(name)),
              actions: [
                patchPending(name, ({ context }) => {
                  const { failures } = progressOf(context);
                  return { error: itemsFailed(name, failures, `more than the ${tolerate} it tolerates`) };
                }),
              ],
            },
            {
              guard: ({ context }) => progressOf(context).done === progressOf(context).items.length,
              target: target(ids.finishing(name)),
              actions: [
                patchPending(name, ({ context }) => {
                  const { failures, items } = progressOf(context);
                  // The engine hands every result to the answer that completes the join (an empty
                  // list has none); a join without them is a bug, not a map of nulls.
                  const results = progressOf(context).results ?? (items.length === 0 ? [] : undefined);
                  if (!results)
                    throw new Error(`map "${name}": the join completed without the items' results`);
                  const output: Json[] = Array.from(
                    { length: items.length },
                    (_, index) => results[index] ?? null,
                  );
                  if (failures.length === 0) return { result: output };
                  return {
                    result: output,
                    toleratedError: itemsFailed(name, failures, `within the ${tolerate} it tolerates`),
                  };
                }),
              ],
            },
          ],
        },
      },
    },
  };
}

function itemsFailed(step: string, failures: MapProgress["failures"], verdict: string): StepError {
  return {
    ...stepError("ItemsFailed", `map "${step}": ${failures.length} item(s) failed, ${verdict}`),
    items: failures,
  };
}
