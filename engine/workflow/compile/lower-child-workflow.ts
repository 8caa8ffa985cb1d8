/**
 * `workflow`: start a child execution of another submitted workflow and wait for it. The
 * child's output is the step's; the child's failure is the step's failure, code and all.
 */
import type { WorkflowStep } from "../definition.ts";
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
  type ListFrame,
  type LoweredKind,
} from "./lowering.ts";

export function lowerChildWorkflow(step: WorkflowStep, frame: ListFrame): LoweredKind {
  const { name } = step;
  const answered = (args: Args) => answersRun(name, args) && args.event.type === "child.done";
  return {
    run: {
      initial: "prepare",
      entry: [evaluateIntoPending(name, frame.scope, step.with, "input")],
      states: {
        prepare: {
          always: unlessFailed(name, { target: "running" }),
        },
        running: {
          entry: [
            enqueueing(({ context, enqueue }: EnqueueArgs) => {
              const pending = pendingOf(context, name);
              enqueue.assign({ pending: { ...context.pending, [name]: { ...pending, inFlight: true } } });
              enqueue(
                command("startChild", {
                  step: name,
                  run: pending.run,
                  workflow: step.workflow,
                  input: pending.input ?? null,
                }),
              );
              enqueue(
                command("record", { type: "ChildStarted", step: name, data: { workflow: step.workflow } }),
              );
            }),
          ],
          exit: [
            enqueueing(({ context, event, enqueue }: EnqueueArgs) => {
              const pending = pendingOf(context, name);
              if (pending.inFlight && !answered({ context, event })) {
                enqueue(command("cancelChild", { step: name, run: pending.run }));
              }
            }),
            patchPending(name, () => ({ inFlight: false })),
          ],
          on: {
            "child.done": [
              {
                guard: (args) =>
                  answered(args) && args.event.type === "child.done" && args.event.error !== undefined,
                target: target(ids.failing(name)),
                actions: [
                  patchPending(name, ({ event }) =>
                    event.type === "child.done" ? { error: event.error } : {},
                  ),
                ],
              },
              {
                guard: answered,
                target: target(ids.finishing(name)),
                actions: [
                  patchPending(name, ({ event }) =>
                    event.type === "child.done" ? { result: event.output ?? null } : {},
                  ),
                ],
              },
            ],
          },
        },
      },
    },
  };
}
