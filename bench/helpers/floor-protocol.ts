/** What the floor helpers and the floor scenarios agree on: subjects, stream, bucket, consumer. */

/** floor.core: the no-op responder answers requests here with the request's own bytes. */
export const noopSubject = "bench.noop";

/** floor.durable: hops are published to this stream (work queue, file storage, like BATON_EVENTS). */
export const hopStream = "BENCH_HOPS";
export const hopSubject = "bench.hops";
/** The durable pull consumer the hop helper reads. */
export const hopConsumer = "hops";
/** Each hop's KV put goes to this bucket (file storage, history 1, like baton_executions). */
export const hopBucket = "bench_hops";
export const hopsPerChain = 10;

/** One hop's message, and the value of its KV put. */
export interface Hop {
  readonly chain: string;
  readonly hop: number;
  readonly pad: string;
}
