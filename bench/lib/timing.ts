/** Deadlines and pacing shared by the scenarios. */
import { setTimeout as sleep } from "node:timers/promises";

export { sleep };

export class TimeoutError extends Error {
  override name = "TimeoutError";
}

/** Rejects with a {@link TimeoutError} naming `what` when `promise` takes longer than `ms`. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`${what}: no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `probe` every `intervalMs` until it returns true; throws a {@link TimeoutError} after `ms`. */
export async function until(
  what: string,
  probe: () => boolean | Promise<boolean>,
  ms: number,
  intervalMs = 10,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new TimeoutError(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/**
 * Runs `task` for indices 0..count-1 with at most `concurrency` at once (a pipelined client:
 * the next call leaves as soon as a slot frees up). Stops early, without error, once `shouldStop` says so.
 */
export async function pipelined(
  count: number,
  concurrency: number,
  task: (index: number) => Promise<void>,
  shouldStop: () => boolean = () => false,
): Promise<number> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < count && !shouldStop()) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane));
  return next;
}
