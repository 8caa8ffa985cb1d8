/**
 * The timer index: wake-ups due later than the near window wait here, unread, until their time
 * comes near.
 *
 * A wake-up due soon is a message on BATON_TIMERS, parked until due as an unacknowledged message
 * of `engine_timers` (a delayed nak). Parked that way, each holds one of the consumer's places
 * (`max_ack_pending`, 1,000,000) for as long as it waits: a million executions waiting a day
 * would leave no place for anything due sooner, and every retry, wait and timeout in the system
 * would stop. So a wake-up due further away than the near window goes to BATON_TIMER_INDEX
 * instead, on `baton.timer-index.<slot>.<execution>`, where `<slot>` is the start (ms) of the
 * one-minute slot its due time falls in. Nobody reads that stream until the slot comes near: it
 * costs bytes, not places.
 *
 * Engines promote slots: a slot is read and its wake-ups published to BATON_TIMERS (message id:
 * their token, so two promotions of one slot make one message) once it begins within a slot of
 * now; then the slot's messages are purged, up to the last one read. How far promotion has come
 * is kept in `baton_engine` (`timer-index.promoted`, compare-and-set), so slots passed while no
 * engine ran (an outage of a week) are promoted at the next start, oldest first.
 *
 * A wake-up goes to the index only when its slot begins two slots after the one being promoted
 * now. The spare slot covers a publish that takes long (NATS slow, a leader election): an arm
 * whose publish to the index completes once its slot may already be promoted (or about to be) is
 * published to BATON_TIMERS as well. A wake-up that comes twice fires once: it is recognised by
 * its token. The same slot also absorbs clocks between engines that differ by up to a minute.
 */
import { retryNats } from "../../sdk/nats-retry.ts";
import { subjects } from "../../sdk/protocol.ts";
import type { JetStreamClient, JetStreamManager, JsMsg, KV } from "nats";
import { isNotFound, timerIndexStream, timerIndexSubject } from "../nats/topology.ts";
import type { TimerMessage } from "./command-events.ts";
import { isExecutionId } from "./ids.ts";

/** The promotion cursor's key in the `baton_engine` bucket: the start of the last slot promoted. */
export const promotedKey = "timer-index.promoted";

export const slotStart = (at: number, slotMs: number) => Math.floor(at / slotMs) * slotMs;

/** The last slot an engine promotes at `now`: the one that holds `now + slot`. */
export const promotableThrough = (now: number, slotMs: number) => slotStart(now + slotMs, slotMs);

/** Whether a wake-up due at `due`, armed at `now`, waits in the index (its slot is two past the one promotable now). */
export const goesToIndex = (due: number, now: number, slotMs: number) =>
  slotStart(due, slotMs) >= promotableThrough(now, slotMs) + 2 * slotMs;

/** Parses a timer message and checks its shape; undefined for a malformed one. */
export function checkTimer(message: JsMsg): TimerMessage | undefined {
  let timer: TimerMessage;
  try {
    timer = message.json<TimerMessage>();
  } catch {
    return undefined;
  }
  if (
    typeof timer?.due !== "number" ||
    typeof timer.token !== "string" ||
    typeof timer.execution !== "string" ||
    !isExecutionId(timer.execution) ||
    typeof timer.event?.type !== "string"
  )
    return undefined;
  return timer;
}

const publishNear = (js: JetStreamClient, timer: TimerMessage, body: string) =>
  retryNats(() => js.publish(subjects.timers(timer.execution), body, { msgID: timer.token }));

/** Arms a wake-up: on BATON_TIMERS when due within the near window, in the index otherwise. */
export async function armTimer(
  js: JetStreamClient,
  state: KV,
  timer: TimerMessage,
  slotMs: number,
): Promise<void> {
  const body = JSON.stringify(timer);
  if (!goesToIndex(timer.due, Date.now(), slotMs)) return void (await publishNear(js, timer, body));
  const slot = slotStart(timer.due, slotMs);
  await retryNats(() => js.publish(timerIndexSubject(slot, timer.execution), body, { msgID: timer.token }));
  // Stored only now: its slot may have been promoted meanwhile, or be being promoted (by this
  // engine's clock, or by the cursor, which moves by the clock of whichever engine promotes: one
  // that runs ahead), so the promotion may not see it. Then it is armed near as well; it fires once.
  if (!goesToIndex(timer.due, Date.now(), slotMs) || (await promotedThrough(state)) + slotMs >= slot)
    await publishNear(js, timer, body);
}

/** The start of the last slot promoted (the cursor), or -Infinity before the first promotion. */
async function promotedThrough(state: KV): Promise<number> {
  const entry = await retryNats(() => state.get(promotedKey));
  return entry && entry.operation === "PUT" ? entry.json<{ promoted: number }>().promoted : -Infinity;
}

/**
 * Removes the index messages of wake-ups an ended execution left armed (`wakes`: token → due),
 * each found by its slot and execution. Best effort: one left behind fires in its time and
 * changes nothing. Resolves to the tokens it did not find there (armed near, or already promoted).
 */
export async function removeIndexedWakes(
  jsm: JetStreamManager,
  execution: string,
  wakes: Record<string, number>,
  slotMs: number,
): Promise<string[]> {
  const left = new Set(Object.keys(wakes));
  const slots = new Set(Object.values(wakes).map((due) => slotStart(due, slotMs)));
  for (const slot of slots) {
    for (let seq = 1; ;) {
      const message = await jsm.streams
        .getMessage(timerIndexStream, { next_by_subj: timerIndexSubject(slot, execution), seq } as never)
        .catch((error: unknown) => {
          if (isNotFound(error) || /no message found/i.test(String(error))) return undefined;
          throw error;
        });
      if (message === undefined) break;
      const token = message.json<Partial<TimerMessage>>().token;
      if (typeof token === "string" && left.delete(token))
        await jsm.streams.deleteMessage(timerIndexStream, message.seq, false);
      seq = message.seq + 1;
    }
  }
  return [...left];
}

export interface TimerIndexLogger {
  info(message: string, fields?: object): void;
  warn(message: string, fields?: object): void;
}

/**
 * Promotes the index's slots as their time comes near: every engine runs one. Two engines may
 * promote the same slot at once; BATON_TIMERS keeps one message per token, and a wake-up that
 * fires twice changes nothing the second time.
 */
export class TimerIndexPromoter {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly state: KV,
    private readonly slotMs: number,
    private readonly log: TimerIndexLogger,
  ) {}

  start(): void {
    // Promotion runs a slot ahead, so a tick every tenth of a slot is plenty.
    const every = Math.max(50, Math.floor(this.slotMs / 10));
    const tick = () => {
      if (this.stopped) return;
      this.running = this.promoteDue()
        .then(() => undefined)
        .catch((error: unknown) =>
          this.log.warn("could not promote the timer index; trying again", { error: String(error) }),
        )
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, every);
        });
    };
    tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** Promotes every slot from the cursor up to the one due now; resolves to the slots promoted. */
  async promoteDue(now = Date.now()): Promise<number> {
    const through = promotableThrough(now, this.slotMs);
    let cursor = await this.cursor(now);
    let promoted = 0;
    while (!this.stopped && cursor.promoted < through) {
      const slot = cursor.promoted + this.slotMs;
      await this.promote(slot);
      try {
        const revision = await this.state.update(
          promotedKey,
          JSON.stringify({ promoted: slot }),
          cursor.revision,
        );
        cursor = { promoted: slot, revision };
        promoted += 1;
      } catch (error) {
        // Another engine moved the cursor: its promotion covers what this one did.
        if (!/wrong last sequence/i.test(String(error))) throw error;
        cursor = await this.cursor(now);
      }
    }
    return promoted;
  }

  /** The cursor; created at the slot before now when missing (nothing older can be in the index). */
  private async cursor(now: number): Promise<{ promoted: number; revision: number }> {
    for (;;) {
      const entry = await this.state.get(promotedKey);
      if (entry && entry.operation === "PUT") {
        const { promoted } = entry.json<{ promoted: number }>();
        return { promoted, revision: entry.revision };
      }
      const promoted = slotStart(now, this.slotMs) - this.slotMs;
      try {
        const revision = await this.state.create(promotedKey, JSON.stringify({ promoted }));
        return { promoted, revision };
      } catch (error) {
        if (!/wrong last sequence|key exists/i.test(String(error))) throw error;
      }
    }
  }

  /** Publishes one slot's wake-ups to BATON_TIMERS, then purges them from the index. */
  private async promote(slot: number): Promise<void> {
    const filter = timerIndexSubject(slot, "*");
    const first = await this.jsm.streams
      .getMessage(timerIndexStream, { next_by_subj: filter, seq: 1 } as never)
      .catch((error: unknown) => {
        if (isNotFound(error) || /no message found/i.test(String(error))) return undefined;
        throw error;
      });
    if (first === undefined) return; // an empty slot: the usual case
    const consumer = await this.js.consumers.get(timerIndexStream, { filterSubjects: filter });
    let lastSeq = 0;
    let count = 0;
    for (;;) {
      const batch = await consumer.fetch({ max_messages: 1_000, expires: 2_000 });
      const sends: Promise<unknown>[] = [];
      let pending = -1;
      for await (const message of batch) {
        lastSeq = Math.max(lastSeq, message.seq);
        pending = message.info.pending;
        const timer = checkTimer(message);
        if (!timer) {
          this.log.warn("dropping a malformed timer from the index", { subject: message.subject });
          continue;
        }
        count += 1;
        sends.push(publishNear(this.js, timer, JSON.stringify(timer)));
      }
      await Promise.all(sends);
      // Ends on the last message there was (nothing pending after it), or on an empty batch
      // (another engine promoted and purged the slot meanwhile).
      if (pending <= 0) break;
    }
    await consumer.delete().catch(() => undefined);
    // A read that stopped short (a delivery that stalled past the fetch's expiry) must not be taken
    // for the whole slot: the cursor would pass what is left, and nothing would read it again.
    // The tick fails, and the slot is promoted again (its wake-ups published twice make one).
    const left = await this.jsm.streams
      .getMessage(timerIndexStream, { next_by_subj: filter, seq: lastSeq + 1 } as never)
      .catch((error: unknown) => {
        if (isNotFound(error) || /no message found/i.test(String(error))) return undefined;
        throw error;
      });
    if (left !== undefined) throw new Error(`the read of timer slot ${slot} ended before its last message`);
    if (lastSeq > 0)
      await retryNats(() => this.jsm.streams.purge(timerIndexStream, { filter, seq: lastSeq + 1 }));
    this.log.info("promoted a slot of the timer index", {
      slot: new Date(slot).toISOString(),
      timers: count,
    });
  }
}
