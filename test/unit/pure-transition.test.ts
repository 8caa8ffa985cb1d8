/**
 * engine/orchestrator/pure-transition.ts stands in for xstate's `initialTransition` and
 * `transition` (it only saves their per-call cost): on every example workflow, driven through task
 * successes, retryable failures, fired timers (retry backoffs, timeouts) and a cancel, both must
 * give the same snapshots and the same actions at every step. The conformance suite runs the examples through the engine's core, which uses it.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { initialTransition, transition, type AnyMachineSnapshot, type AnyStateMachine } from "xstate";
import { expect, it } from "vitest";
import { pureInitialTransition, pureTransition } from "../../engine/orchestrator/pure-transition.ts";
import { compileWorkflow } from "../../engine/workflow/compile/compile-workflow.ts";
import type { MachineEvent, MachineInput } from "../../engine/workflow/compile/machine-types.ts";
import { validateWorkflowText } from "../../engine/workflow/validate.ts";

const root = join(import.meta.dirname, "../../workflows");

/** What is compared: the snapshot's state and data, and the actions with their resolved params. */
const seen = (snapshot: AnyMachineSnapshot, actions: unknown[]) =>
  structuredClone({
    status: snapshot.status,
    value: snapshot.value as unknown,
    context: snapshot.context as unknown,
    output: (snapshot as { output?: unknown }).output,
    actions: actions.map((action) => {
      const { type, params } = action as { type: string; params?: unknown };
      return { type, params };
    }),
  });

/**
 * The next event the driver would send: the first task the actions dispatch, answered with success
 * or, every third time, with a retryable failure; else a delayed event they armed (a retry's
 * backoff: fired at once); with neither, a cancel (once).
 */
function nextEvent(actions: unknown[], at: number, cancelled: boolean): MachineEvent | undefined {
  for (const action of actions) {
    const { type, params } = action as {
      type: string;
      params?: { step: string; run: number; attempt: number };
    };
    if (type !== "dispatchTask" || params === undefined) continue;
    const { step, run, attempt } = params;
    if (at % 3 === 0 && attempt === 1)
      return {
        type: "task.failed",
        step,
        run,
        attempt,
        error: { code: "FunctionError", message: "failed on purpose", retryable: true },
        at,
      };
    return { type: "task.succeeded", step, run, attempt, output: { ok: at }, at };
  }
  for (const action of actions) {
    const { type, params } = action as {
      type: string;
      params?: { delay?: unknown; event?: MachineEvent };
    };
    if (type === "xstate.raise" && params?.delay !== undefined && params.event !== undefined)
      return { ...params.event, at };
  }
  return cancelled ? undefined : { type: "cancel", reason: "test", at };
}

it("gives the snapshots and actions of xstate's own pure functions, step by step, on every example", () => {
  const files = readdirSync(root).filter((file) => file.endsWith(".yaml"));
  expect(files.length).toBeGreaterThan(25);
  let transitions = 0;
  const kinds = new Set<string>();
  for (const file of files) {
    const { workflows } = validateWorkflowText(readFileSync(join(root, file), "utf8"));
    for (const definition of workflows) {
      const compiled = compileWorkflow(definition);
      const machines: AnyStateMachine[] = [compiled.machine, ...Object.values(compiled.itemMachines)];
      for (const machine of machines) {
        const input: MachineInput = {
          input: {},
          execution: { id: "e1", workflow: definition.name, revision: 1, startedAt: 1_000 },
          item: { n: 1 },
          index: 0,
        };
        let [theirs, theirActions] = initialTransition(machine, input);
        let [ours, ourActions] = pureInitialTransition(machine, input);
        expect({ file, ...seen(ours, ourActions) }).toEqual({ file, ...seen(theirs, theirActions) });
        let cancelled = false;
        for (let i = 0; i < 30; i++) {
          const event = nextEvent(theirActions, 2_000 + i, cancelled);
          if (event === undefined || theirs.status !== "active") break;
          kinds.add(event.type.startsWith("xstate.after") ? "timer" : event.type);
          cancelled ||= event.type === "cancel";
          [theirs, theirActions] = transition(machine, theirs, event);
          [ours, ourActions] = pureTransition(machine, ours, event);
          expect({ file, i, ...seen(ours, ourActions) }).toEqual({ file, i, ...seen(theirs, theirActions) });
          transitions += 1;
        }
      }
    }
  }
  // The examples must carry the comparison past their first steps, through every kind of event.
  expect(transitions).toBeGreaterThan(50);
  expect([...kinds].sort()).toEqual(["cancel", "task.failed", "task.succeeded", "timer"]);
});
