/**
 * `switch`: the first branch whose `when` holds (or the `default`) is taken. A branch with `next`
 * finishes the switch (output `null`) and jumps; a branch with `steps` runs them inline, in the
 * switch's own scope, and the switch's output is theirs.
 */
import { stepError } from "../../errors.ts";
import type { SwitchStep } from "../definition.ts";
import { jumpTransitions, lowerList, onwardTransitions } from "./lower-list.ts";
import {
  conditionHolds,
  unlessFailed,
  committedError,
  ids,
  patchPending,
  pendingOf,
  target,
  type Args,
  type Compilation,
  type ListFrame,
  type LoweredKind,
  type StateConfig,
  type StepPlace,
  type TransitionConfig,
} from "./lowering.ts";

/** `pending.branch` holds the index of the chosen branch; it outlives the step's commit. */
const chosen = (step: string, branch: number) => (args: Args) =>
  pendingOf(args.context, step).branch === branch;

export function lowerSwitch(
  step: SwitchStep,
  frame: ListFrame,
  compilation: Compilation,
  place: StepPlace,
): LoweredKind {
  const { name } = step;
  const branchStates: Record<string, StateConfig> = {};
  const routes: TransitionConfig[] = [];
  const jumps: TransitionConfig[] = [];

  step.switch.forEach((branch, index) => {
    if (branch.next !== undefined) {
      routes.push({
        guard: chosen(name, index),
        target: target(ids.finishing(name)),
        actions: [patchPending(name, () => ({ result: null }))],
      });
      // Taken from the switch's `done` state, once the switch itself has finished.
      jumps.push(
        ...jumpTransitions(place.index, branch.next, place.list, name, compilation, chosen(name, index)),
      );
      return;
    }
    const steps = branch.steps ?? [];
    const key = `branch-${index}`;
    const inline: ListFrame = {
      scope: frame.scope,
      exit: {
        target: target(ids.finishing(name)),
        actions: [patchPending(name, ({ context }) => ({ result: context.last[frame.scope] ?? null }))],
      },
      fail: (failed) => ({
        target: target(ids.failing(name)),
        actions: [patchPending(name, ({ context }) => ({ error: committedError(context, failed)! }))],
      }),
      ret: frame.ret,
    };
    branchStates[key] = { initial: steps[0]!.name, states: lowerList(steps, inline, compilation) };
    routes.push({ guard: chosen(name, index), target: key });
  });

  return {
    run: {
      initial: "choose",
      states: {
        choose: {
          entry: [
            patchPending(name, (args) => {
              for (const [index, branch] of step.switch.entries()) {
                if (branch.default) return { branch: index };
                const outcome = conditionHolds(args, name, frame.scope, branch.when);
                if (!outcome.ok) return { error: outcome.error };
                if (outcome.value) return { branch: index };
              }
              return {
                error: stepError(
                  "NoBranchMatched",
                  `no branch of switch "${name}" matched, and it has no default branch`,
                ),
              };
            }),
          ],
          always: unlessFailed(name, ...routes),
        },
        ...branchStates,
      },
    },
    after:
      jumps.length > 0
        ? [...jumps, ...onwardTransitions(step, place.index, place.list, frame, compilation)]
        : undefined,
  };
}
