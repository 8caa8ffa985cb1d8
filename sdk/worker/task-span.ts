// The worker's span of one attempt: a child of the engine's attempt span, whose context arrives
// in the task's W3C headers (`traceparent`, `tracestate`). Only the OpenTelemetry API is used
// here: the process that serves the functions decides whether spans go anywhere (`baton worker`
// starts the SDK from the OTEL_* variables; without an SDK every call below is a no-op).
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  propagation,
  trace,
  type Span,
  type TextMapGetter,
} from "@opentelemetry/api";
import type { MsgHdrs } from "nats";
import type { TaskEnvelope, WireError } from "../protocol.ts";

const tracer = trace.getTracer("baton-worker");

const natsHeaders: TextMapGetter<MsgHdrs | undefined> = {
  keys: (carrier) => (carrier ? carrier.keys() : []),
  get: (carrier, key) => {
    const value = carrier?.get(key);
    return value === undefined || value === "" ? undefined : value;
  },
};

/** Starts the span of an attempt, under the context the task carries. */
export function startTaskSpan(
  task: TaskEnvelope,
  functionName: string,
  workerId: string,
  carrier: MsgHdrs | undefined,
): Span {
  const parent = propagation.extract(ROOT_CONTEXT, carrier, natsHeaders);
  return tracer.startSpan(
    `function ${functionName}`,
    {
      kind: SpanKind.CONSUMER,
      attributes: {
        "baton.workflow": task.workflow,
        "baton.execution": task.execution,
        "baton.step": task.step,
        "baton.run": task.run,
        "baton.attempt": task.attempt,
        "baton.function": functionName,
        "baton.effect": task.effect,
        "baton.worker": workerId,
        ...(task.idempotencyKey === undefined ? {} : { "baton.idempotency_key": task.idempotencyKey }),
      },
    },
    parent,
  );
}

/** Ends an attempt's span with what became of it. */
export function endTaskSpan(
  span: Span,
  outcome: { ok: true } | { ok: false; error: WireError } | { handedBack: true },
): void {
  if ("handedBack" in outcome) {
    span.setAttribute("baton.outcome", "handed back");
  } else if (outcome.ok) {
    span.setAttribute("baton.outcome", "succeeded");
  } else {
    span.setAttributes({ "baton.outcome": "failed", "baton.error.code": outcome.error.code });
    span.setStatus({
      code: SpanStatusCode.ERROR,
      message: `${outcome.error.code}: ${outcome.error.message}`,
    });
  }
  span.end();
}
