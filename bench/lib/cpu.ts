/**
 * CPU time of the processes in a measurement window, from /proc/<pid>/stat (utime + stime, all
 * threads): on a 2-core machine, which process saturates a core says where the limit is.
 */
import { readFileSync } from "node:fs";
import { now } from "./stats.ts";

/** Linux's USER_HZ: /proc reports CPU time in these ticks (100 on every mainstream kernel). */
const ticksPerSecond = 100;

function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name, which is in parentheses and may hold spaces.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
}

/**
 * CPU time of this process's children that have exited and been waited for (cutime + cstime of
 * /proc/self/stat): how a short-lived child's CPU is read once its own /proc entry is gone.
 */
export function reapedChildrenCpuSeconds(): number {
  const stat = readFileSync("/proc/self/stat", "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[13]) + Number(fields[14])) / ticksPerSecond;
}

function ownCpuSeconds(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
}

/** CPU used per process over the window, in percent of one core. */
export type CpuShares = Record<string, number>;

/** Starts measuring `pids` (by name) and the bench process itself (as `bench`). */
export function startCpuMeter(pids: Readonly<Record<string, number>>): () => CpuShares {
  const startedAt = now();
  const before = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, cpuSeconds(pid)]));
  const ownBefore = ownCpuSeconds();
  return () => {
    const seconds = (now() - startedAt) / 1_000;
    const shares: CpuShares = {};
    for (const [name, pid] of Object.entries(pids))
      shares[name] = (100 * (cpuSeconds(pid) - (before[name] ?? 0))) / seconds;
    shares.bench = (100 * (ownCpuSeconds() - ownBefore)) / seconds;
    return shares;
  };
}

export function formatCpu(shares: CpuShares): string {
  return `CPU (% of one core): ${Object.entries(shares)
    .map(([name, share]) => `${name} ${share.toFixed(0)}%`)
    .join(", ")}`;
}

/** The shares as `cpuPercent.<process>` fields of a row's data. */
export function cpuData(shares: CpuShares): Record<string, number> {
  return Object.fromEntries(Object.entries(shares).map(([name, share]) => [`cpuPercent.${name}`, share]));
}
