// The concurrency limit of one lane. A slot is taken before a task is pulled (so a worker never
// holds a task it cannot start) and given back once the task is acked or handed back.

export class LaneSlots {
  readonly limit: number;
  #used = 0;
  readonly #waiters: { max: number; resolve: (taken: number) => void }[] = [];

  constructor(limit: number) {
    this.limit = limit;
  }

  get used(): number {
    return this.#used;
  }

  /**
   * Waits until at least one slot is free, then takes up to `max` of them and resolves with how
   * many. Waiters are served first come, first served. Resolves 0 when `signal` aborts.
   */
  take(max: number, signal?: AbortSignal): Promise<number> {
    if (signal?.aborted === true) return Promise.resolve(0);
    if (this.#waiters.length === 0 && this.#used < this.limit) return Promise.resolve(this.#grab(max));
    return new Promise((resolve) => {
      const waiter = {
        max,
        resolve: (taken: number) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(taken);
        },
      };
      const onAbort = (): void => {
        const at = this.#waiters.indexOf(waiter);
        if (at !== -1) this.#waiters.splice(at, 1);
        resolve(0);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiters.push(waiter);
    });
  }

  /** Gives `count` slots back and wakes the waiters they free. */
  release(count = 1): void {
    if (count <= 0) return;
    this.#used = Math.max(0, this.#used - count);
    while (this.#used < this.limit) {
      const waiter = this.#waiters.shift();
      if (waiter === undefined) break;
      waiter.resolve(this.#grab(waiter.max));
    }
  }

  #grab(max: number): number {
    const taken = Math.max(1, Math.min(max, this.limit - this.#used));
    this.#used += taken;
    return taken;
  }
}
