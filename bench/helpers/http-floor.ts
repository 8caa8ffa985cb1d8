// The `starts` floors, a process of its own (as the API is): a fastify server with the shape of
// `POST /v1/workflows/{name}/executions` and nothing of Baton behind it. `/plain/...` answers 202
// at once; `/publish/...` first does the one JetStream publish (awaiting its ack, deduplicated by
// a message id, file storage) that a start cannot avoid. Prints `http floor ready <url>`.
import { randomBytes } from "node:crypto";
import Fastify from "fastify";
import { connect, RetentionPolicy, StorageType } from "nats";

export const floorStream = "BENCH_STARTS";
const floorSubject = "bench.starts";

const nc = await connect({ servers: process.env.NATS_URL ?? "nats://127.0.0.1:4222" });
const jsm = await nc.jetstreamManager();
await jsm.streams.add({
  name: floorStream,
  subjects: [`${floorSubject}.>`],
  retention: RetentionPolicy.Limits,
  storage: StorageType.File,
});
const js = nc.jetstream();

const app = Fastify({ logger: false });
const accepted = (id: string, workflow: string) => ({ id, workflow, revision: 1, status: "running" });

app.post<{ Params: { name: string } }>("/plain/v1/workflows/:name/executions", async (request, reply) => {
  const id = `x${randomBytes(8).toString("hex")}`;
  return reply.code(202).header("location", `/v1/executions/${id}`).send(accepted(id, request.params.name));
});

app.post<{ Params: { name: string } }>("/publish/v1/workflows/:name/executions", async (request, reply) => {
  const id = `x${randomBytes(8).toString("hex")}`;
  const start = {
    type: "execution.start",
    workflow: request.params.name,
    input: request.body,
    at: Date.now(),
  };
  await js.publish(`${floorSubject}.${id}`, JSON.stringify(start), { msgID: `start:${id}` });
  return reply.code(202).header("location", `/v1/executions/${id}`).send(accepted(id, request.params.name));
});

const url = await app.listen({ host: "127.0.0.1", port: 0 });
process.on("SIGTERM", () => {
  void app
    .close()
    .then(() => nc.close())
    .then(() => process.exit(0));
});
console.log(`http floor ready ${url}`);
