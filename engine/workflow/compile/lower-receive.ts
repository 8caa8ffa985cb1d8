/**
 * `receive`: wait for a signal or a message on a subject. What arrives before the step is
 * reached waits in the execution's inbox (the root state keeps it: see compile-workflow.ts);
 * on entry the step takes the first inbox entry that is for it and satisfies `match`.
 */
import { assign } from "xstate";
import { stepError } from "../../errors.ts";
import type { ReceiveStep } from "../definition.ts";
import { durationMs } from "../duration.ts";
import { evaluateString, hasExpression, toText } from "../expressions.ts";
import { refuseSubject } from "../subject-guard.ts";
import {
  attempt,
  bindingsFor,
  command,
  conditionHolds,
  evaluationOptions,
  failWith,
  hasError,
  ids,
  nowOf,
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
import type { InboxEntry, MachineContext } from "./machine-types.ts";

export function lowerReceive(step: ReceiveStep, frame: ListFrame, compilation: Compilation): LoweredKind {
  const { name } = step;
  const { signal, subject, match, timeout } = step.receive;
  const kind: InboxEntry["kind"] = signal !== undefined ? "signal" : "message";

  /** Whether an entry is for this step; an error when `match` itself fails. */
  const accepts = (args: Args, entry: InboxEntry) => {
    const wanted = kind === "signal" ? signal : pendingOf(args.context, name).subject;
    if (entry.kind !== kind || entry.name !== wanted) return { ok: true as const, value: false };
    if (match === undefined) return { ok: true as const, value: true };
    return conditionHolds(args, name, frame.scope, match, { event: entry.payload });
  };

  /** Takes the first acceptable inbox entry, if any, as the step's result. */
  const takeFromInbox = enqueueing(({ context, event, enqueue }: EnqueueArgs) => {
    for (const [position, entry] of context.inbox.entries()) {
      const verdict = accepts({ context, event }, entry);
      if (!verdict.ok) {
        enqueue.assign({ pending: withPatch(context, name, { error: verdict.error }) });
        return;
      }
      if (verdict.value) {
        enqueue.assign({
          inbox: context.inbox.filter((_, index) => index !== position),
          pending: withPatch(context, name, { result: entry.payload }),
        });
        enqueue(command("record", receivedRecord(name, entry)));
        return;
      }
    }
  });

  const arrived = (args: Args): InboxEntry | undefined => {
    const { event } = args;
    if (event.type === "signal")
      return { kind: "signal", name: event.name, payload: event.payload, at: nowOf(args) };
    if (event.type === "message")
      return { kind: "message", name: event.subject, payload: event.data, at: nowOf(args) };
    return undefined;
  };

  const namesThisStep = (args: Args) => {
    const entry = arrived(args);
    const wanted = kind === "signal" ? signal : pendingOf(args.context, name).subject;
    return entry !== undefined && entry.name === wanted;
  };

  /** An arriving signal or message: taken if acceptable, else left in the inbox for later. */
  const onArrival = enqueueing(({ context, event, enqueue }: EnqueueArgs) => {
    const entry = arrived({ context, event });
    if (!entry) return;
    const verdict = accepts({ context, event }, entry);
    if (!verdict.ok) enqueue.assign({ pending: withPatch(context, name, { error: verdict.error }) });
    else if (verdict.value) {
      enqueue.assign({ pending: withPatch(context, name, { result: entry.payload }) });
      enqueue(command("record", receivedRecord(name, entry)));
    } else enqueue.assign({ inbox: [...context.inbox, entry] });
  });

  const settled = [
    { guard: hasError(name), target: target(ids.failing(name)) },
    {
      guard: ({ context }: Args) => pendingOf(context, name).result !== undefined,
      target: target(ids.finishing(name)),
    },
  ];

  const after: Record<string, ReturnType<typeof failWith>[]> = {};
  if (timeout !== undefined) {
    const delay = `receive-timeout:${name}`;
    const ms = durationMs(timeout);
    compilation.delays[delay] = () => ms;
    after[delay] = [
      failWith(name, () =>
        stepError(
          "Timeout",
          `receive "${name}" got no ${kind === "signal" ? `signal "${signal}"` : "message"} within ${timeout}`,
        ),
      ),
    ];
  }

  return {
    run: {
      initial: "listening",
      entry: [
        ...(subject === undefined ? [] : [resolveSubject(name, frame.scope, subject)]),
        takeFromInbox,
        ...(subject === undefined
          ? []
          : [
              {
                type: "subscribe",
                params: ({ context }: Args) => ({
                  step: name,
                  subject: pendingOf(context, name).subject ?? subject,
                }),
              },
            ]),
      ],
      exit:
        subject === undefined
          ? []
          : [
              {
                type: "unsubscribe",
                params: ({ context }: Args) => ({
                  step: name,
                  subject: pendingOf(context, name).subject ?? subject,
                }),
              },
            ],
      states: {
        listening: {
          always: settled,
          // Only what names this step is handled here; anything else bubbles up to the root's inbox.
          on: { [kind]: [{ guard: (args: Args) => namesThisStep(args), actions: [onArrival] }] },
          after,
        },
      },
    },
  };
}

function resolveSubject(step: string, scope: string, subject: string) {
  return patchPending(step, (args) => {
    if (!hasExpression(subject)) return { subject };
    const outcome = attempt(() =>
      evaluateString(subject, bindingsFor(args.context, scope), evaluationOptions(args, step)),
    );
    if (!outcome.ok) return { error: outcome.error };
    const resolved = toText(outcome.value);
    // An expression may have made a subject the validator could not see: refuse it here.
    const refused = refuseSubject(resolved);
    if (refused)
      return { error: stepError("SubjectRefused", `receive "${step}": subject "${resolved}" ${refused}`) };
    return { subject: resolved };
  });
}

function withPatch(context: MachineContext, step: string, patch: object) {
  return { ...context.pending, [step]: { ...pendingOf(context, step), ...patch } };
}

function receivedRecord(step: string, entry: InboxEntry) {
  return {
    type: "SignalReceived" as const,
    step,
    data: { [entry.kind]: entry.name, payload: entry.payload },
  };
}

/** Keeps a signal or message that no active `receive` took, for a later one. Used at the machine root. */
export const keepInInbox = assign(({ context, event }: Args) => {
  if (event.type === "signal") {
    return {
      inbox: [
        ...context.inbox,
        { kind: "signal" as const, name: event.name, payload: event.payload, at: event.at },
      ],
    };
  }
  if (event.type === "message") {
    return {
      inbox: [
        ...context.inbox,
        { kind: "message" as const, name: event.subject, payload: event.data, at: event.at },
      ],
    };
  }
  return {};
});
