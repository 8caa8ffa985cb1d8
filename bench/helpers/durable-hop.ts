// floor.durable's hop consumer, a process of its own (as the engine is): for each hop it
// receives from the durable pull consumer, it does the KV put, acks the message and, until the
// chain has 10 hops, publishes the next hop with a JetStream publish that waits for its ack.
// The bench sees a chain end as the KV put of its 10th hop. The stream, bucket and consumer are
// created by the bench before this starts.
import { connect, type JsMsg } from "nats";
import { hopBucket, hopConsumer, hopStream, hopSubject, hopsPerChain, type Hop } from "./floor-protocol.ts";

const nc = await connect({ servers: process.env.NATS_URL ?? "nats://127.0.0.1:4222" });
const js = nc.jetstream();
const kv = await js.views.kv(hopBucket);
const consumer = await js.consumers.get(hopStream, hopConsumer);
const messages = await consumer.consume({ max_messages: 100 });

async function handle(message: JsMsg): Promise<void> {
  const hop = message.json<Hop>();
  // Persist, then ack, then send the next hop: the order a durable step cannot avoid.
  await kv.put(hop.chain, message.data);
  message.ack();
  if (hop.hop < hopsPerChain) await js.publish(hopSubject, JSON.stringify({ ...hop, hop: hop.hop + 1 }));
}

process.on("SIGTERM", () => {
  messages.stop();
  void nc.close().then(() => process.exit(0));
});
console.log("durable hop consumer ready");
for await (const message of messages) await handle(message);
