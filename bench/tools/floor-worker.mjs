// The floor under a worker's cold start (bench `cold-start.floor`): the least a Node process
// speaking docs/protocol.md does to run one `noop` task. It loads the `nats` client, connects,
// pulls from the function's consumer and reports the input back as the output: no SDK, no
// isolate thread, no heartbeats, no input checks, no effect ledger. What `baton worker` takes
// beyond this row is Baton's own start; this row itself is Node's start plus the NATS client.
//
//   NATS_URL=nats://127.0.0.1:4222 node bench/tools/floor-worker.mjs
//
// Serves until SIGTERM. Plain JavaScript, written from docs/protocol.md like
// test/fixtures/worker/foreign-worker.mjs (which this does not share code with: the point is
// to load nothing more than it needs).
import { AckPolicy, DeliverPolicy, connect, headers, nanos } from "nats";

const fn = "noop";
const durable = `fn_pure_${fn}`;
const worker = `floor-${process.pid}`;
const nc = await connect({ servers: process.env.NATS_URL ?? "nats://127.0.0.1:4222", name: worker });
const js = nc.jetstream();
const jsm = await nc.jetstreamManager();
// The engine creates the streams; the consumer is created by the first worker of the function.
await jsm.consumers.info("BATON_TASKS", durable).catch(() =>
  jsm.consumers.add("BATON_TASKS", {
    durable_name: durable,
    filter_subject: `baton.tasks.pure.${fn}`,
    deliver_policy: DeliverPolicy.All,
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(60_000),
    max_deliver: -1,
  }),
);
const messages = await (await js.consumers.get("BATON_TASKS", durable)).consume({ max_messages: 4 });
process.stderr.write(`${JSON.stringify({ msg: "serving", worker })}\n`);
process.once("SIGTERM", () => void messages.close().then(() => nc.drain()));

for await (const msg of messages) {
  const task = msg.json();
  const h = headers();
  h.set("Baton-Protocol", "2");
  const body = {
    v: 2,
    execution: task.execution,
    step: task.step,
    run: task.run,
    attempt: task.attempt,
    worker,
  };
  const id = `${task.execution}:${task.step}:${task.run}:${task.attempt}`;
  const subject = task.reply;
  await js.publish(subject, JSON.stringify({ ...body, type: "task.started" }), {
    headers: h,
    msgID: `task.started:${id}`,
  });
  await js.publish(subject, JSON.stringify({ ...body, type: "task.succeeded", output: task.input ?? null }), {
    headers: h,
    msgID: `task.succeeded:${id}`,
  });
  msg.ack();
}
