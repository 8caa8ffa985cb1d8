// What an engine's memory does after a burst of starts: parks N executions in `wait: 1h` (64
// starts in flight, no worker) on a fresh stack, then prints the engine's VmRSS 2, 10, 30, 60 and
// 90 s after the last one parked. V8 keeps the burst's heap pages until it finds the process idle;
// what holding the parked executions costs is the later figure. For a heap snapshot, run with
// NODE_OPTIONS=--heapsnapshot-signal=SIGUSR2 and `kill -USR2` the engine (it writes Heap.*.heapsnapshot).
//
//   node --import tsx bench/tools/heap-waiting.ts [n=20000]
import { readFileSync } from "node:fs";
import { newExecutionId } from "../../engine/orchestrator/ids.ts";
import { streams } from "../../sdk/protocol.ts";
import { parseOptions } from "../lib/options.ts";
import { withStack } from "../lib/stack.ts";
import { sleep } from "../lib/timing.ts";

const count = Number(process.argv[2] ?? 20_000);

await withStack({ scenario: "heap-waiting", workers: [] }, parseOptions([]), async (stack) => {
  const { executions } = stack;
  const pid = stack.engine!.pid;
  const rssMb = () =>
    Math.round(Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024);
  await executions.apply("baton: v1\nname: parked\nsteps:\n  - name: nap\n    wait: 1h\n");
  process.stdout.write(`engine RSS idle: ${rssMb()} MB\n`);
  let next = 0;
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (next < count) {
        next += 1;
        await executions.start("parked", {}, { id: newExecutionId() });
      }
    }),
  );
  const jsm = await stack.nc.jetstreamManager();
  while ((await jsm.streams.info(streams.events)).state.messages > 0) await sleep(200);
  let waited = 0;
  for (const at of [2, 10, 30, 60, 90]) {
    await sleep((at - waited) * 1_000);
    waited = at;
    process.stdout.write(`engine RSS ${at} s after ${count} parked: ${rssMb()} MB\n`);
  }
});
process.exit(0);
