// The concurrency limit of one lane, shared by the pullers of every function in the lane. A
// slot is taken when a task arrives and given back once the task is acked or handed back.

export class LaneSlots {
  readonly limit: number;
  #used = 0;
  readonly #waiters = new Set<() => void>();

  constructor(limit: number) {
    this.limit = limit;
  }

  get free(): number {
    return this.limit - this.#used;
  }

  /** Takes a slot if one is free. */
  tryTake(): boolean {
    if (this.#used >= this.limit) return false;
    this.#used += 1;
    return true;
  }

  release(): void {
    this.#used = Math.max(0, this.#used - 1);
    for (const wake of this.#waiters) wake();
  }

  /** Resolves once a slot is free (at once if one is), or when `signal` aborts. */
  whenFree(signal: AbortSignal): Promise<void> {
    if (this.#used < this.limit || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        if (this.#used >= this.limit && !signal.aborted) return;
        this.#waiters.delete(done);
        signal.removeEventListener("abort", done);
        resolve();
      };
      this.#waiters.add(done);
      signal.addEventListener("abort", done, { once: true });
    });
  }
}
