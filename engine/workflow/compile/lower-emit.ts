/**
 * `emit`: publish an event. The command carries a deduplication id made of the execution, the
 * step and the run, so the driver's publish happens once per step run however often a crash
 * makes it replay the command.
 */
import { stepError, type StepError } from "../../errors.ts";
import type { EmitStep } from "../definition.ts";
import { evaluateString, evaluateTemplate, hasExpression, toText } from "../expressions.ts";
import { refuseSubject } from "../subject-guard.ts";
import {
  attempt,
  bindingsFor,
  command,
  evaluationOptions,
  hasError,
  ids,
  pendingOf,
  target,
  enqueueing,
  type EnqueueArgs,
  type ListFrame,
  type LoweredKind,
} from "./lowering.ts";

export function lowerEmit(step: EmitStep, frame: ListFrame): LoweredKind {
  const { name } = step;
  const { subject, data } = step.emit;
  return {
    run: {
      entry: [
        enqueueing(({ context, event, enqueue }: EnqueueArgs) => {
          const args = { context, event };
          const pending = pendingOf(context, name);
          const bindings = bindingsFor(context, frame.scope);
          const outcome = attempt(() => {
            const options = evaluationOptions(args, name);
            const resolved = hasExpression(subject) ? evaluateString(subject, bindings, options) : subject;
            const payload =
              data === undefined
                ? (context.last[frame.scope] ?? null)
                : evaluateTemplate(data, bindings, options);
            return { subject: toText(resolved), data: payload };
          });
          const fail = (error: StepError) =>
            enqueue.assign({ pending: { ...context.pending, [name]: { ...pending, error } } });
          if (!outcome.ok) return fail(outcome.error);
          // An expression may have made a subject the validator could not see: refuse it here.
          const refused = refuseSubject(outcome.value.subject);
          if (refused)
            return fail(
              stepError("SubjectRefused", `emit "${name}": subject "${outcome.value.subject}" ${refused}`),
            );
          enqueue.assign({ pending: { ...context.pending, [name]: { ...pending, result: outcome.value } } });
          enqueue(
            command("emitEvent", {
              step: name,
              run: pending.run,
              ...outcome.value,
              id: `${context.execution.id}/${name}/${pending.run}`,
            }),
          );
          enqueue(command("record", { type: "EventEmitted", step: name, data: outcome.value }));
        }),
      ],
      always: [
        { guard: hasError(name), target: target(ids.failing(name)) },
        { target: target(ids.finishing(name)) },
      ],
    },
  };
}
