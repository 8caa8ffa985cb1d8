// Pulls the tasks of one function in one lane. Every function of a lane keeps a pull request
// waiting on the server while the lane has a free slot, so a task starts as soon as it is
// published, whatever function it is for. A pull asks for at most the lane's free slots (its
// size starts at one and doubles while pulls come back full), and a task that arrives after
// another function's task took the last slot is handed straight back (nak) with this pull
// cancelled, so it goes to another worker: a worker never holds a task it cannot start.
//
// Cancelling a pull is unsubscribing its inbox: nats-server drops a waiting pull request whose
// reply subject has no interest left instead of delivering into it.
import type { Consumer, ConsumerMessages, JsMsg } from "nats";
import type { Lane } from "../protocol.ts";
import type { LaneSlots } from "./lane-slots.ts";
import { errorFields, type Logger } from "./logger.ts";

export interface TaskPullerOptions {
  readonly fn: string;
  readonly lane: Lane;
  readonly slots: LaneSlots;
  /** How long one pull request waits on the server (nats.js needs at least 1 s). */
  readonly expiresMs: number;
  /** Gets the consumer, creating it when missing (called again after a pull fails). */
  /** The consumer to pull from; `again` after a pull failed (the consumer may be gone). */
  readonly getConsumer: (again: boolean) => Promise<Consumer>;
  /** Runs a task to its end, holding one slot; never throws. */
  readonly onTask: (msg: JsMsg) => Promise<void>;
  readonly logger: Logger;
}

const retryDelaysMs = [100, 500, 1_000, 2_000, 5_000];

export class TaskPuller {
  readonly #options: TaskPullerOptions;
  readonly #stopping = new AbortController();
  #current: ConsumerMessages | undefined;
  #loop: Promise<void> | undefined;

  constructor(options: TaskPullerOptions) {
    this.#options = options;
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  /** Stops pulling: cancels the waiting pull request and resolves once the loop has ended. */
  async stop(): Promise<void> {
    this.#stopping.abort();
    this.#current?.stop();
    await this.#loop;
  }

  async #run(): Promise<void> {
    const { slots, logger } = this.#options;
    const signal = this.#stopping.signal;
    let batch = 1;
    let failures = 0;
    let consumer: Consumer | undefined;
    while (!signal.aborted) {
      await slots.whenFree(signal);
      if (signal.aborted) break;
      const size = Math.max(1, Math.min(batch, slots.free));
      let accepted = 0;
      try {
        consumer ??= await this.#options.getConsumer(failures > 0);
        const messages = await consumer.fetch({ max_messages: size, expires: this.#options.expiresMs });
        this.#current = messages;
        if (signal.aborted) messages.stop(); // stop() came while the pull was being set up
        for await (const msg of messages) {
          if (!signal.aborted && slots.tryTake()) {
            accepted += 1;
            void this.#options.onTask(msg).finally(() => slots.release());
          } else {
            // Cancel the pull first, so that the task handed back cannot come back into it.
            messages.stop();
            msg.nak();
          }
        }
        failures = 0;
      } catch (error) {
        if (signal.aborted) break;
        consumer = undefined;
        const delay = retryDelaysMs[Math.min(failures, retryDelaysMs.length - 1)] ?? 5_000;
        failures += 1;
        logger.warn("pulling tasks failed; trying again", {
          function: this.#options.fn,
          lane: this.#options.lane,
          retryInMs: delay,
          ...errorFields(error),
        });
        await abortableDelay(delay, signal);
      } finally {
        this.#current = undefined;
      }
      batch = accepted === size ? Math.min(size * 2, slots.limit) : 1;
    }
  }
}

function abortableDelay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
