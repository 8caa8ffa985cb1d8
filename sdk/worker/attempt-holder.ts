/**
 * Before a worker takes over an effect attempt another worker claimed (the same task message came
 * to it again: the ack wait passed), it must know that the holder no longer runs it, or the
 * effect runs twice. A missing heartbeat entry is not proof: during a leader election on a NATS
 * cluster the holder's heartbeat writes and its "still working" acks can fail for longer than the
 * entry lives, while the holder, still connected, runs the effect or records its completion. So
 * the holder is asked first, over core NATS (no JetStream leader needed): it answers whether it
 * still claims, runs or reports the attempt. Only when nobody answers (the holder is not
 * connected now) does its heartbeat entry decide, and then only once the holder has seemed gone
 * for `takeOverAfterMs`: a holder whose node died reconnects meanwhile. An unknown answer (a
 * timeout, NATS away) counts as "still held": the task comes back later rather than risk running
 * the effect twice.
 */
import { ErrorCode, NatsError, type KV, type NatsConnection, type Subscription } from "nats";
import { isNoResponders } from "../nats-retry.ts";
import { subjects, workerTtlMs, type HoldAnswer, type HoldQuery } from "../protocol.ts";
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

/**
 * How long a holder must have seemed gone (no answer: no responders, and no heartbeat entry)
 * before its attempt is taken over. A worker whose NATS node died is not gone but reconnecting,
 * and its heartbeat writes failed meanwhile: its entry can be missing for a moment while it still
 * runs the effect. Twice an entry's lifetime; the task comes back every 2 s until then.
 */
export const takeOverAfterMs = 2 * workerTtlMs;

/** Whether `worker` may still finish `attempt` it claimed: asked, else judged by its heartbeat entry. */
export function holderAlive(
  nc: NatsConnection,
  workers: KV | undefined,
  logger?: Logger,
  options: { takeOverAfterMs?: number } = {},
): (worker: string, attempt: string) => Promise<boolean> {
  const graceMs = options.takeOverAfterMs ?? takeOverAfterMs;
  /** `<worker> <attempt>` → when the holder first seemed gone. */
  const seemedGone = new Map<string, number>();
  let warnedPermission = false;
  const answers = async (worker: string, attempt: string): Promise<boolean | "unanswered"> => {
    try {
      const query: HoldQuery = { attempt };
      const reply = await nc.request(subjects.holds(worker), JSON.stringify(query), {
        timeout: holdQueryTimeoutMs,
      });
      return reply.json<HoldAnswer>().holds === true;
    } catch (error) {
      // No responders: not connected now (gone, or reconnecting), or a worker that does not
      // answer questions. Not allowed to ask (a NATS configuration from before the question):
      // as if unanswered, said once, so that a dead worker's tasks are still taken over.
      if (isNoResponders(error)) return "unanswered";
      if (error instanceof NatsError && error.code === (ErrorCode.PermissionsViolation as string)) {
        if (!warnedPermission)
          logger?.warn(
            `not allowed to ask other workers whether they hold an attempt (publish on ${subjects.allHolds}): judging by heartbeats alone`,
            errorFields(error),
          );
        warnedPermission = true;
        return "unanswered";
      }
      // Anything else (a timeout, a garbled answer) is unknown: held.
      return true;
    }
  };
  return async (worker, attempt) => {
    const key = `${worker} ${attempt}`;
    const answer = await answers(worker, attempt);
    // An answer is the holder's own word: no grace needed either way.
    if (answer !== "unanswered") {
      seemedGone.delete(key);
      return answer;
    }
    let alive = true;
    if (workers !== undefined) {
      try {
        const entry = await workers.get(worker);
        alive = entry !== null && entry.operation === "PUT";
      } catch {
        alive = true;
      }
    }
    if (alive) {
      seemedGone.delete(key);
      return true;
    }
    const since = seemedGone.get(key);
    if (since === undefined) {
      // Bounded: one entry per attempt being considered; the oldest go first.
      if (seemedGone.size >= 10_000) seemedGone.delete(seemedGone.keys().next().value!);
      seemedGone.set(key, Date.now());
      return true;
    }
    if (Date.now() - since < graceMs) return true;
    seemedGone.delete(key);
    return false;
  };
}
