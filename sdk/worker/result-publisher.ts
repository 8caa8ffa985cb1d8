// Publishing what happened to an attempt on the events stream. Every report carries a
// deduplication id (one per attempt and kind), so publishing it again — after a retry here, or
// by a second worker that got the task redelivered — never gives the engine two reports.
import { retryNats } from "../nats-retry.ts";
import { headers as createHeaders, type JetStreamClient, type MsgHdrs, type NatsConnection } from "nats";
import {
  headers,
  protocolVersion,
  resultMessageId,
  streams,
  subjects,
  type AttemptStartedEnvelope,
  type ResultEnvelope,
} from "../protocol.ts";

/** Thrown when a report does not fit in a NATS message. */
export class ResultTooLargeError extends Error {
  override readonly name = "ResultTooLargeError";
}

/** What travels from the task to its reports: the trace context and the effect's key. */
export interface ReportHeaders {
  readonly traceparent?: string;
  readonly tracestate?: string;
  readonly idempotencyKey?: string;
}

const retryDelaysMs = [100, 500];
// Room for the headers next to the body.
const headerAllowance = 4_096;

export class ResultPublisher {
  readonly #js: JetStreamClient;
  readonly #nc: NatsConnection;
  readonly #maxPayload: () => number;

  constructor(nc: NatsConnection, js: JetStreamClient, maxPayload: () => number) {
    this.#nc = nc;
    this.#js = js;
    this.#maxPayload = maxPayload;
  }

  /**
   * Says an attempt started, on core NATS (`subjects.attempts`): for live views and whoever
   * listens, at no durable cost. The engine learns the start from the result's `startedAt`.
   */
  announce(started: AttemptStartedEnvelope): void {
    this.#nc.publish(subjects.attempts(started.execution), JSON.stringify(started));
  }

  /**
   * Publishes `report` and resolves once JetStream has stored it (or recognised it as a
   * duplicate). Retries a failed publish twice; throws when it still fails.
   */
  async publish(report: ResultEnvelope, from: ReportHeaders, subject: string): Promise<void> {
    const body = new TextEncoder().encode(JSON.stringify(report));
    const limit = this.#maxPayload() - headerAllowance;
    if (body.length > limit) {
      throw new ResultTooLargeError(
        `the ${report.type} report is ${body.length} bytes, more than the ${limit} a NATS message can carry here`,
      );
    }
    const options = {
      msgID: resultMessageId(report.execution, report.step, report.run, report.attempt, report.type),
      headers: reportHeaders(report, from),
      expect: { streamName: streams.events },
    };
    // Election weather (no leader for a moment) is waited out; other failures are tried again twice.
    for (let attempt = 0; ; attempt++) {
      try {
        await retryNats(() => this.#js.publish(subject, body, options));
        return;
      } catch (error) {
        const delay = retryDelaysMs[attempt];
        if (delay === undefined) throw error;
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }
}

function reportHeaders(report: ResultEnvelope, from: ReportHeaders): MsgHdrs {
  const h = createHeaders();
  h.set(headers.protocol, String(protocolVersion));
  h.set(headers.execution, report.execution);
  h.set(headers.step, report.step);
  h.set(headers.run, String(report.run));
  h.set(headers.attempt, String(report.attempt));
  if (from.idempotencyKey !== undefined) h.set(headers.idempotencyKey, from.idempotencyKey);
  if (from.traceparent !== undefined) h.set(headers.traceparent, from.traceparent);
  if (from.tracestate !== undefined) h.set(headers.tracestate, from.tracestate);
  return h;
}
