/**
 * The CPU time of child processes that have ended: /proc/self/stat's cutime + cstime, which the
 * kernel adds a child's user and system time to (its threads' and its own reaped children's
 * included) when this process waits for it. The difference across one child's life is that
 * child's CPU: on a machine busy with other work, a steadier measure than its wall time. Linux
 * only; 10 ms resolution (USER_HZ = 100).
 */
import { readFileSync } from "node:fs";

const ticksPerSecond = 100;

/** CPU time, in ms, of every child of this process that has ended and been waited for. */
export function endedChildrenCpuMs(): number {
  const stat = readFileSync("/proc/self/stat", "utf8");
  // After "pid (comm) ", the fields from the third (state) on; cutime and cstime are the 16th and 17th.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(fields[13]) + Number(fields[14])) * 1_000) / ticksPerSecond;
}
