/**
 * The keys of a KV bucket, each once, sorted. nats.js lists keys through an ordered consumer that
 * goes on delivering while it lists: a key written during the listing comes again, so a listing
 * taken as it comes can name a key twice (a worker or a workflow shown twice). Keys first, values
 * after: reading values while the listing runs cuts it short.
 */
import type { KV } from "nats";

export async function listKeys(kv: KV, filter?: string): Promise<string[]> {
  const keys = new Set<string>();
  for await (const key of await kv.keys(filter)) keys.add(key);
  return [...keys].sort();
}
