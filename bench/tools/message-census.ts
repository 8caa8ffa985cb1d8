// Counts every NATS message that one step of a chain costs, by kind: runs sequential 10-step
// noop chains on a fresh stack (nats-server, engine and worker processes) while a subscription
// on ">" sees all traffic (publishes, JetStream API calls, acks, KV writes, replies).
//
//   node --import tsx bench/tools/message-census.ts [chains=20]
import { readFileSync } from "node:fs";
import { parseOptions } from "../lib/options.ts";
import { withStack } from "../lib/stack.ts";
import { sequentialChains } from "../lib/workflows.ts";

const chains = Number(process.argv[2] ?? 20);
const steps = 10;

/** The kind of a subject: its first tokens, with ids and inboxes folded together. */
function kind(subject: string): string {
  if (subject.startsWith("_INBOX.")) return "_INBOX (replies: publish acks, KV/API answers)";
  if (subject.startsWith("$JS.ACK.")) {
    const stream = subject.split(".")[2];
    return `$JS.ACK.${stream} (consumer acks/naks/progress)`;
  }
  if (subject.startsWith("$JS.API.CONSUMER.MSG.NEXT."))
    return `$JS.API.CONSUMER.MSG.NEXT.${subject.split(".")[6]} (pull requests)`;
  if (subject.startsWith("$JS.API.DIRECT.GET.") || subject.startsWith("$JS.API.STREAM.MSG.GET."))
    return `${subject.split(".").slice(0, 4).join(".")}.<stream> (KV get)`;
  if (subject.startsWith("$JS.API.")) return subject.split(".").slice(0, 4).join(".");
  if (subject.startsWith("$KV.")) return `${subject.split(".").slice(0, 2).join(".")}.<key> (KV put)`;
  if (subject.startsWith("baton."))
    return `${subject
      .split(".")
      .slice(0, subject.startsWith("baton.tasks.") ? 4 : 2)
      .join(".")}.…`;
  return subject;
}

/** A process's CPU time (ms, user + system) and its read and write system calls so far, from /proc. */
function usage(pid: number): { cpuMs: number; reads: number; writes: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15 of stat)
  const io = Object.fromEntries(
    readFileSync(`/proc/${pid}/io`, "utf8")
      .trim()
      .split("\n")
      .map((line) => line.split(": ") as [string, string]),
  );
  return { cpuMs: ticks * 10, reads: Number(io.syscr), writes: Number(io.syscw) };
}

await withStack({ scenario: "census" }, parseOptions([]), async (stack) => {
  const { nc, executions, history } = stack;
  const runChain = await sequentialChains({ executions, history }, "census-chain", steps);
  const counts = new Map<string, number>();
  const subscription = nc.subscribe(">", {
    callback: (_error, message) =>
      counts.set(kind(message.subject), (counts.get(kind(message.subject)) ?? 0) + 1),
  });
  await nc.flush();
  const processes = Object.entries(stack.pids()).filter(([name]) => name !== "bench");
  const before = processes.map(([, pid]) => usage(pid));
  for (let i = 0; i < chains; i++) await runChain();
  const after = processes.map(([, pid]) => usage(pid));
  await nc.flush();
  subscription.unsubscribe();
  const total = [...counts.values()].reduce((a, b) => a + b, 0);
  const perStep = (n: number) => (n / (chains * steps)).toFixed(2).padStart(6);
  process.stdout.write(
    `${chains} chains of ${steps} steps (the bench's own history subscription included)\n`,
  );
  process.stdout.write(`${perStep(total)} messages per step in all\n`);
  for (const [name, n] of [...counts.entries()].sort((a, b) => b[1] - a[1]))
    process.stdout.write(`${perStep(n)}  ${name}\n`);
  // CPU is counted in clock ticks (10 ms): over a few hundred steps, about ±0.05 ms a step.
  process.stdout.write("\nper step, by process: CPU ms, read and write system calls (threads included)\n");
  processes.forEach(([name], index) => {
    const [a, b] = [before[index]!, after[index]!];
    process.stdout.write(
      `${name.padEnd(12)} ${perStep(b.cpuMs - a.cpuMs)} ms  ${perStep(b.reads - a.reads)} reads  ${perStep(b.writes - a.writes)} writes\n`,
    );
  });
});
process.exit(0);
