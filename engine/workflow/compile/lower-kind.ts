/** One lowering per step kind; this picks the right one. */
import { stepKindOf, type Step } from "../definition.ts";
import { lowerCall } from "./lower-call.ts";
import { lowerChildWorkflow } from "./lower-child-workflow.ts";
import { lowerEmit } from "./lower-emit.ts";
import { lowerFail, lowerReturn, lowerSet } from "./lower-data-steps.ts";
import { lowerMap } from "./lower-map.ts";
import { lowerParallel } from "./lower-parallel.ts";
import { lowerReceive } from "./lower-receive.ts";
import { lowerSwitch } from "./lower-switch.ts";
import { lowerWait } from "./lower-wait.ts";
import type { Compilation, ListFrame, LoweredKind, StepPlace } from "./lowering.ts";

export function lowerKind(
  step: Step,
  frame: ListFrame,
  compilation: Compilation,
  place: StepPlace,
): LoweredKind {
  const kind = stepKindOf(step);
  switch (kind) {
    case "call":
      return lowerCall(step as Extract<Step, { call: string }>, frame, compilation);
    case "switch":
      return lowerSwitch(step as Extract<Step, { switch: unknown }>, frame, compilation, place);
    case "parallel":
      return lowerParallel(step as Extract<Step, { parallel: unknown }>, frame, compilation);
    case "map":
      return lowerMap(step as Extract<Step, { map: unknown }>, frame, compilation);
    case "wait":
      return lowerWait(step as Extract<Step, { wait: unknown }>, frame, compilation);
    case "receive":
      return lowerReceive(step as Extract<Step, { receive: unknown }>, frame, compilation);
    case "emit":
      return lowerEmit(step as Extract<Step, { emit: unknown }>, frame);
    case "workflow":
      return lowerChildWorkflow(step as Extract<Step, { workflow: string }>, frame);
    case "set":
      return lowerSet(step as Extract<Step, { set: unknown }>, frame);
    case "return":
      return lowerReturn(step as Extract<Step, { return: unknown }>, frame);
    case "fail":
      return lowerFail(step as Extract<Step, { fail: unknown }>, frame);
    default: {
      const exhaustive: never = kind;
      throw new Error(`no lowering for step kind ${String(exhaustive)}`);
    }
  }
}
