// Where the time of one step goes: runs sequential 10-step noop chains on a fresh stack
// (nats-server, engine and worker processes, as the bench starts them) while a subscription on
// ">" stamps every message with the time it was seen here; prints, for the median chain, each
// message of one step in the middle of the chain with the time since the step's task was
// published, and the median gap between the kinds of message across all chains.
//
//   node --import tsx bench/tools/message-timeline.ts [chains=50]
import { parseOptions } from "../lib/options.ts";
import { withStack } from "../lib/stack.ts";
import { sequentialChains } from "../lib/workflows.ts";

const chains = Number(process.argv[2] ?? 50);
const steps = 10;

/** A message's kind: its subject with ids, numbers and inboxes folded. */
function kind(subject: string): string {
  if (subject.startsWith("_INBOX.")) return "_INBOX";
  return subject
    .split(".")
    .slice(0, 5)
    .map((token) => (token.length > 20 || /^\d+$/.test(token) ? "<n>" : token))
    .join(".");
}

interface Seen {
  at: number;
  kind: string;
}

await withStack({ scenario: "timeline" }, parseOptions([]), async ({ nc, executions, history }) => {
  const runChain = await sequentialChains({ executions, history }, "timeline-chain", steps);
  let seen: Seen[] = [];
  const subscription = nc.subscribe(">", {
    callback: (_error, message) => seen.push({ at: performance.now(), kind: kind(message.subject) }),
  });
  await nc.flush();
  const runs: { took: number; seen: Seen[] }[] = [];
  for (let i = 0; i < chains; i++) {
    seen = [];
    const began = performance.now();
    await runChain();
    runs.push({ took: performance.now() - began, seen });
  }
  subscription.unsubscribe();
  runs.sort((a, b) => a.took - b.took);
  const median = (values: number[]) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? NaN;
  // Every step between two attempt starts, in every chain: the n-th message of each kind, by its
  // time since the step's attempt started.
  const offsets = new Map<string, number[]>();
  const order: string[] = [];
  let windows = 0;
  for (const run of runs) {
    const starts = run.seen.filter((s) => s.kind.startsWith("baton.attempts"));
    for (let i = 0; i + 1 < starts.length; i++) {
      const from = starts[i]!.at;
      const to = starts[i + 1]!.at;
      windows += 1;
      const nth = new Map<string, number>();
      for (const s of run.seen) {
        if (s.at <= from || s.at > to) continue;
        const n = (nth.get(s.kind) ?? 0) + 1;
        nth.set(s.kind, n);
        const label = `${s.kind} #${n}`;
        if (!offsets.has(label)) {
          offsets.set(label, []);
          order.push(label);
        }
        offsets.get(label)!.push(s.at - from);
      }
    }
  }
  process.stdout.write(
    `chains: p50 ${median(runs.map((r) => r.took)).toFixed(2)} ms; ${windows} steps (attempt start to the next)\n` +
      "median ms after the attempt started, and in how many of the steps the message was seen:\n",
  );
  const rows = order
    .map((label) => ({ label, at: median(offsets.get(label)!), n: offsets.get(label)!.length }))
    .filter((row) => row.n >= windows / 2)
    .sort((a, b) => a.at - b.at);
  for (const row of rows)
    process.stdout.write(`${row.at.toFixed(3).padStart(8)} ms  ${String(row.n).padStart(5)}  ${row.label}\n`);
});
process.exit(0);
