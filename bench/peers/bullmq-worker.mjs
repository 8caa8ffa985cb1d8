// The BullMQ side of the `peers` benchmark: one worker process serving the chain's queue with a
// no-op processor (a job's result is its data). A chain of N steps is a flow of N nested jobs
// (bench/scenarios/peers.ts adds them): BullMQ runs a parent only once its child has completed,
// so the innermost job runs first and the root last. Env: REDIS_PORT, QUEUE, CONCURRENCY.
// Prints `ready` once the worker is connected.
import { Worker } from "bullmq";

const worker = new Worker(process.env.QUEUE ?? "bench-chain", async (job) => job.data, {
  connection: { host: "127.0.0.1", port: Number(process.env.REDIS_PORT), maxRetriesPerRequest: null },
  concurrency: Number(process.env.CONCURRENCY ?? 32),
  // Keep the last thousand completed jobs, as a production set-up would, rather than all of them.
  removeOnComplete: { count: 1_000 },
});
worker.on("error", (error) => console.error(`worker error: ${error.message}`));
worker.on("failed", (job, error) => console.error(`job ${job?.id} failed: ${error.message}`));
await worker.waitUntilReady();
console.log("ready");

for (const signal of ["SIGTERM", "SIGINT"])
  process.once(signal, () => void worker.close().finally(() => process.exit(0)));
