/** Sequential sampling: a discarded warm-up, then one timed call after another. */
import { now } from "./stats.ts";

export interface SampleCounts {
  /** Calls run first and thrown away: JIT, connection and cache warm-up. */
  readonly warmup: number;
  readonly samples: number;
}

/** Runs `call` `warmup + samples` times, one after another; returns the timed durations in ms. */
export async function sampleSequentially(
  counts: SampleCounts,
  call: () => Promise<void>,
  onProgress?: (done: number) => void,
): Promise<number[]> {
  for (let i = 0; i < counts.warmup; i++) await call();
  const durations: number[] = [];
  for (let i = 0; i < counts.samples; i++) {
    const started = now();
    await call();
    durations.push(now() - started);
    if (onProgress !== undefined && (i + 1) % 100 === 0) onProgress(i + 1);
  }
  return durations;
}
