/**
 * Removing KV keys without leaving anything behind. `kv.delete` and `kv.purge` write a marker
 * per key, and JetStream keeps markers for as long as the bucket keeps messages: keys Baton
 * removes by the million (execution records and their chunks, effect ledger entries) would leave
 * as many markers. A stream purge by subject removes a key's messages, marker and all; it is used
 * wherever no watcher needs to see the removal. (Where one does, as for `receive` subscriptions,
 * the key is deleted and the marker purged later: {@link purgeOldMarkers}.)
 */
import type { JetStreamManager, KV } from "nats";

/** What nats.js's KV implementation (its `Bucket`) has besides the `KV` interface. */
interface BucketInternals {
  jsm: JetStreamManager;
  stream: string;
  subjectForKey(key: string): string;
}

function internals(kv: KV): BucketInternals | undefined {
  const bucket = kv as unknown as Partial<BucketInternals>;
  return bucket.jsm && typeof bucket.stream === "string" && typeof bucket.subjectForKey === "function"
    ? (bucket as BucketInternals)
    : undefined;
}

/** Removes `key`, or every key the pattern (with `*` or `>`) names, and every message they left. */
export async function eraseKeys(kv: KV, pattern: string): Promise<void> {
  const bucket = internals(kv);
  if (!bucket) {
    // Not nats.js's bucket: fall back to purges, which leave one marker per key.
    for await (const key of await kv.keys(pattern)) await kv.purge(key);
    return;
  }
  await bucket.jsm.streams.purge(bucket.stream, { filter: bucket.subjectForKey(pattern) });
}

/** Removes the delete and purge markers older than `olderMs` (newer ones stay for watchers to see). */
export async function purgeOldMarkers(kv: KV, olderMs: number): Promise<void> {
  // nats.js's bucket has it (`KvRemove`), though the `KV` type does not say so.
  await (kv as KV & { purgeDeletes(olderMillis?: number): Promise<unknown> }).purgeDeletes(olderMs);
}

/**
 * Purges a watched bucket's old markers every `everyMs`, keeping those younger than `ageMs` so
 * that every watcher (another engine replica catching up after a short disconnection) sees them
 * first. Each pass reads the last entry of every key, so this is for small buckets.
 */
export function sweepMarkers(
  kv: KV,
  { ageMs, everyMs }: { ageMs: number; everyMs: number },
  onError: (error: unknown) => void,
): { stop(): void } {
  const timer = setInterval(() => void purgeOldMarkers(kv, ageMs).catch(onError), everyMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
