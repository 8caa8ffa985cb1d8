/**
 * Before a worker takes over an effect attempt another worker claimed (the same task message came
 * to it again: the ack wait passed), it must know that the holder no longer runs it, or the
 * effect runs twice. A missing heartbeat entry is not proof: during a leader election on a NATS
 * cluster the holder's heartbeat writes and its "still working" acks can fail for longer than the
 * entry lives, while the holder, still connected, runs the effect or records its completion. So
 * the holder is asked first, over core NATS (no JetStream leader needed): it answers whether it
 * still claims, runs or records the attempt. Only when nobody answers (the holder is not
 * connected now) does its heartbeat entry decide, as before. An unknown answer (a timeout, NATS
 * away) counts as "still held": the task comes back later rather than risk running the effect
 * twice.
 */
import { ErrorCode, NatsError, type KV, type NatsConnection, type Subscription } from "nats";
import { subjects, type HoldAnswer, type HoldQuery } from "../protocol.ts";
import { errorFields, type Logger } from "./logger.ts";

/** How long to wait for the holder's answer. */
const holdQueryTimeoutMs = 2_000;

/** Answers hold queries for `worker` from `holds` (whether it claims, runs or records the attempt now). */
export function answerHoldQueries(
  nc: NatsConnection,
  worker: string,
  holds: (attempt: string) => boolean,
  logger: Logger,
): Subscription {
  return nc.subscribe(subjects.holds(worker), {
    callback: (error, message) => {
      if (error) {
        logger.warn("cannot answer hold queries", errorFields(error));
        return;
      }
      let attempt: unknown;
      try {
        attempt = message.json<HoldQuery>().attempt;
      } catch {
        // Not a query: nothing to answer.
      }
      const answer: HoldAnswer = { holds: typeof attempt === "string" && holds(attempt) };
      message.respond(JSON.stringify(answer));
    },
  });
}

/** Whether `worker` may still finish `attempt` it claimed: asked, else judged by its heartbeat entry. */
export function holderAlive(
  nc: NatsConnection,
  workers: KV | undefined,
): (worker: string, attempt: string) => Promise<boolean> {
  return async (worker, attempt) => {
    try {
      const query: HoldQuery = { attempt };
      const reply = await nc.request(subjects.holds(worker), JSON.stringify(query), {
        timeout: holdQueryTimeoutMs,
      });
      return reply.json<HoldAnswer>().holds === true;
    } catch (error) {
      // No responders: not connected now (or a worker that does not answer queries). Anything
      // else (a timeout, a garbled answer) is unknown.
      if (!(error instanceof NatsError && error.code === (ErrorCode.NoResponders as string))) return true;
    }
    if (workers === undefined) return true;
    try {
      const entry = await workers.get(worker);
      return entry !== null && entry.operation === "PUT";
    } catch {
      return true;
    }
  };
}
