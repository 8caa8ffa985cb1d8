// Pulls the tasks of one function in one lane, never more than the lane has free slots: a task
// a worker holds but cannot start would wait here while another worker sits idle. The size of
// each pull adapts: it starts at one, doubles while pulls come back full, and falls back to one
// when the queue runs dry, so a busy function takes the free slots and an idle one holds one.
import type { Consumer, ConsumerMessages, JsMsg } from "nats";
import type { Lane } from "../protocol.ts";
import type { LaneSlots } from "./lane-slots.ts";
import { errorFields, type Logger } from "./logger.ts";

export interface TaskPullerOptions {
  readonly fn: string;
  readonly lane: Lane;
  readonly slots: LaneSlots;
  /** How long one pull request waits on the server for tasks (nats.js needs at least 1 s). */
  readonly expiresMs: number;
  /** Gets the consumer, creating it when missing (called again after a pull fails). */
  readonly getConsumer: () => Promise<Consumer>;
  /** Runs a task to its end; never throws. */
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

  /**
   * Stops pulling. The pull request in flight is left to expire on the server (one that is
   * merely unsubscribed could still be handed a task, which would then sit until its ack wait
   * runs out); a task it still brings is handed back at once. With `hard`, the pull is dropped.
   */
  async stop(hard = false): Promise<void> {
    this.#stopping.abort();
    if (hard) this.#current?.stop();
    await this.#loop;
  }

  async #run(): Promise<void> {
    const { slots, logger } = this.#options;
    const signal = this.#stopping.signal;
    let batch = 1;
    let failures = 0;
    let consumer: Consumer | undefined;
    while (!signal.aborted) {
      const reserved = await slots.take(batch, signal);
      if (reserved === 0) break;
      let delivered = 0;
      try {
        consumer ??= await this.#options.getConsumer();
        this.#current = await consumer.fetch({ max_messages: reserved, expires: this.#options.expiresMs });
        for await (const msg of this.#current) {
          delivered += 1;
          if (signal.aborted) {
            msg.nak();
            slots.release(1);
            continue;
          }
          void this.#options.onTask(msg).finally(() => slots.release(1));
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
        slots.release(reserved - delivered);
      }
      batch = delivered === reserved ? Math.min(reserved * 2, slots.limit) : 1;
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
