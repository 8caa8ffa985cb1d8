/**
 * `parallel`: an xstate parallel state with one region per branch. Each branch has its own scope
 * (a copy of the outer `$vars`, and the outer "previous output" as its first default input).
 * With `failFast`, a failing branch fails the step at once, which exits (and so cancels) the
 * others; without it, the failure is remembered and the step fails once every branch has ended.
 */
import { assign } from "xstate";
import type { Json, ParallelStep } from "../definition.ts";
import { lowerList } from "./lower-list.ts";
import {
  committedError,
  ids,
  patchPending,
  target,
  type Action,
  type Args,
  type Compilation,
  type ListFrame,
  type LoweredKind,
  type StateConfig,
} from "./lowering.ts";

export const branchScope = (step: string, branch: string) => `${step}/${branch}`;
const branchDoneId = (step: string, branch: string) => `s-${step}-branch-${branch}-done`;

export function lowerParallel(step: ParallelStep, frame: ListFrame, compilation: Compilation): LoweredKind {
  const { name } = step;
  const failFast = step.parallel.failFast !== false;
  const branchNames = Object.keys(step.parallel.branches);
  const regions: Record<string, StateConfig> = {};

  for (const branch of branchNames) {
    const steps = step.parallel.branches[branch]!;
    const scope = branchScope(name, branch);
    const done = target(branchDoneId(name, branch));
    const branchFrame: ListFrame = {
      scope,
      exit: {
        target: done,
        actions: [setBranchOutput(name, branch, ({ context }) => context.last[scope] ?? null)],
      },
      ret: (returning) => ({
        target: done,
        actions: [setBranchOutput(name, branch, ({ context }) => context.steps[returning]?.output ?? null)],
      }),
      fail: (failed) =>
        failFast
          ? {
              target: target(ids.failing(name)),
              actions: [patchPending(name, ({ context }) => ({ error: committedError(context, failed)! }))],
            }
          : { target: done, actions: [rememberFailure(name, failed)] },
    };
    regions[branch] = {
      initial: steps[0]!.name,
      states: {
        ...lowerList(steps, branchFrame, compilation),
        "branch-done": { id: branchDoneId(name, branch), type: "final" },
      },
    };
  }

  return {
    run: {
      type: "parallel",
      entry: [
        assign(({ context }: Args) => {
          const vars = { ...context.vars };
          const last = { ...context.last };
          for (const branch of branchNames) {
            vars[branchScope(name, branch)] = { ...(context.vars[frame.scope] ?? {}) };
            last[branchScope(name, branch)] = context.last[frame.scope] ?? null;
          }
          return { vars, last, branches: { ...context.branches, [name]: { outputs: {}, error: null } } };
        }),
      ],
      states: regions,
      onDone: [
        {
          guard: ({ context }) => context.branches[name]?.error != null,
          target: target(ids.failing(name)),
          actions: [patchPending(name, ({ context }) => ({ error: context.branches[name]!.error! }))],
        },
        {
          target: target(ids.finishing(name)),
          actions: [
            patchPending(name, ({ context }) => {
              const outputs = context.branches[name]?.outputs ?? {};
              return {
                result: Object.fromEntries(branchNames.map((branch) => [branch, outputs[branch] ?? null])),
              };
            }),
          ],
        },
      ],
    },
  };
}

function setBranchOutput(step: string, branch: string, output: (args: Args) => Json): Action {
  return assign(({ context, event }: Args) => {
    const progress = context.branches[step]!;
    return {
      branches: {
        ...context.branches,
        [step]: { ...progress, outputs: { ...progress.outputs, [branch]: output({ context, event }) } },
      },
    };
  });
}

/** Keeps the first failure (in time); the step fails with it once all branches have ended. */
function rememberFailure(step: string, failed: string): Action {
  return assign(({ context }: Args) => {
    const progress = context.branches[step]!;
    if (progress.error) return {};
    return {
      branches: { ...context.branches, [step]: { ...progress, error: committedError(context, failed)! } },
    };
  });
}
