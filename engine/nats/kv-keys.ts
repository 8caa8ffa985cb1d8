/**
 * The keys of a KV bucket, each once, sorted.
 *
 * nats.js's `kv.keys()` lists through an ordered push consumer (last value per key, headers
 * only) and ends when a message arrives that says nothing is pending after it. Two things go
 * wrong with it, and this listing avoids both:
 * - The consumer goes on delivering while it lists, so a key written during the listing comes
 *   again: taken as it comes, a listing can name a key twice (a worker shown twice). Hence the set.
 * - When the entries still to be delivered are removed between the consumer's creation and their
 *   delivery (a TTL bucket's entries expiring: worker heartbeats, pool leases), no such last
 *   message ever comes and `kv.keys()` waits forever. A pool's tick, or an API request listing
 *   workers, then hangs for good. Here, a listing that has not ended within a moment asks the
 *   server for its consumer's state, and ends when the server has nothing left to deliver and
 *   everything it delivered has arrived.
 *
 * Keys first, values after: reading values while the listing runs cuts it short.
 */
import { consumerOpts, type JetStreamClient, type KV } from "nats";

/** How long a listing runs before it asks the server whether anything is left to deliver. */
const stallCheckMs = 250;
/** Stall checks that may fail in a row (about 10 s) before the listing fails. */
const maxFailedChecks = 40;

export async function listKeys(kv: KV, filter = ">"): Promise<string[]> {
  const { js, bucket } = bucketOf(kv);
  const prefix = `$KV.${bucket}.`;
  const options = consumerOpts();
  options.orderedConsumer();
  options.bindStream(`KV_${bucket}`);
  options.deliverLastPerSubject();
  options.headersOnly();
  const sub = await js.subscribe(prefix + filter, options);
  const keys = new Set<string>();
  // As kv.keys(): the consumer's state at its creation (a field nats.js does not type).
  const created = (sub as unknown as { info?: { last?: { num_pending?: number } } }).info?.last;
  if (created?.num_pending === 0) {
    sub.unsubscribe();
    return [];
  }
  /** The consumer that delivered the last entry received (ordered consumers are remade on a gap), and its delivery sequence. */
  let last = { consumer: "", delivery: 0 };
  let receivedSinceCheck = true;
  let checking = false;
  /** Whether the listing reached its end (rather than its subscription closing under it). */
  let complete = false;
  let failedChecks = 0;
  let failure: unknown;
  const stallCheck = setInterval(() => {
    // Only a listing that received nothing since the last check: one still receiving is not stalled.
    if (checking || receivedSinceCheck) {
      receivedSinceCheck = false;
      return;
    }
    checking = true;
    sub
      .consumerInfo()
      .then((info) => {
        // Nothing left to deliver, and every delivery made has arrived: the entries counted
        // for it are gone.
        failedChecks = 0;
        const delivered = info.name === last.consumer ? last.delivery : 0;
        if (info.num_pending === 0 && info.delivered.consumer_seq <= delivered) {
          complete = true;
          sub.unsubscribe();
        }
      })
      // The consumer may be between two of its ordered resets: asked again at the next check,
      // but not for ever (NATS away, or not allowed to ask).
      .catch((error: unknown) => {
        failedChecks += 1;
        if (failedChecks < maxFailedChecks) return;
        failure = error;
        sub.unsubscribe();
      })
      .finally(() => {
        checking = false;
      });
  }, stallCheckMs);
  try {
    for await (const message of sub) {
      receivedSinceCheck = true;
      last = { consumer: message.info.consumer, delivery: message.info.deliverySequence };
      const operation = message.headers?.get("KV-Operation");
      if (operation !== "DEL" && operation !== "PURGE") keys.add(message.subject.slice(prefix.length));
      // As kv.keys(): the entries already on their way are still taken.
      if (message.info.pending === 0) {
        complete = true;
        sub.unsubscribe();
      }
    }
  } finally {
    clearInterval(stallCheck);
    sub.unsubscribe();
  }
  if (!complete)
    throw new Error(`listing the keys of ${bucket} ended before it was complete`, { cause: failure });
  return [...keys].sort();
}

/** The JetStream client and bucket name behind a nats.js KV (fields of its `Bucket` class). */
function bucketOf(kv: KV): { js: JetStreamClient; bucket: string } {
  const { js, bucket } = kv as unknown as { js?: JetStreamClient; bucket?: string };
  if (js === undefined || typeof bucket !== "string")
    throw new Error("listKeys needs a KV opened by nats.js (its Bucket class names js and bucket)");
  return { js, bucket };
}
