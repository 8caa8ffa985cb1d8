/**
 * The machine and versions a run happened on, recorded next to every result: a number means
 * little without the CPU, the core count, the server version and the commit it measured.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { cpus, loadavg, release } from "node:os";
import { resolveClusterNatsServerBinary, resolveNatsServerBinary } from "../../test/helpers/nats-server.ts";
import { repoRoot } from "./processes.ts";

export interface Environment {
  /** The local date of the run (YYYY-MM-DD), which names the results files. */
  readonly date: string;
  readonly startedAt: string;
  readonly machine: {
    readonly cpuModel: string;
    readonly cores: number;
    readonly memoryMb: number;
    readonly kernel: string;
    /** 1, 5 and 15-minute load averages when the run began: a busy machine shows here. */
    readonly loadAverage: readonly number[];
  };
  readonly node: string;
  readonly natsServer: string;
  /** The nats-server the `cluster` scenario's three nodes run (NATS_SERVER_CLUSTER_BIN, else the same). */
  readonly natsClusterServer: string;
  /** `git rev-parse --short HEAD`, with `+uncommitted` when the working tree has changes. */
  readonly commit: string;
}

/**
 * nats-server 2.9.10 (Debian's) acknowledges a JetStream publish once the message is written to
 * the file store's buffers (the page cache), and syncs to disk every two minutes by default.
 */
export const durabilityNote =
  "nats-server 2.9.10: a JetStream ack means the message is in the page cache, not fsync'd (the file " +
  "store syncs every 2 minutes by default), so a machine crash (not a process crash) can lose the last " +
  "acknowledged writes. With nats-server 2.10+ and `sync_interval: always` every write is fsync'd before " +
  "its ack: durable against power loss, and each step pays at least one fsync on the persistence path " +
  "(expect higher latencies and lower throughput, by how much depends on the disk).";

export function collectEnvironment(): Environment {
  const started = new Date();
  return {
    date: localDate(started),
    startedAt: started.toISOString(),
    machine: {
      cpuModel: cpuModel(),
      cores: cpus().length,
      memoryMb: memoryMb(),
      kernel: release(),
      loadAverage: loadavg().map((load) => Math.round(load * 100) / 100),
    },
    node: process.version,
    natsServer: natsServerVersion(resolveNatsServerBinary),
    natsClusterServer: natsServerVersion(resolveClusterNatsServerBinary),
    commit: gitCommit(),
  };
}

function localDate(date: Date): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

function cpuModel(): string {
  try {
    const line = readFileSync("/proc/cpuinfo", "utf8")
      .split("\n")
      .find((l) => l.startsWith("model name"));
    if (line !== undefined) return line.slice(line.indexOf(":") + 1).trim();
  } catch {
    // Not Linux: fall back on what Node reports.
  }
  return cpus()[0]?.model ?? "unknown";
}

function memoryMb(): number {
  try {
    const match = /^MemTotal:\s+(\d+) kB/m.exec(readFileSync("/proc/meminfo", "utf8"));
    if (match?.[1] !== undefined) return Math.round(Number(match[1]) / 1024);
  } catch {
    // Not Linux.
  }
  return 0;
}

function natsServerVersion(resolve: () => string): string {
  try {
    return run(resolve(), ["--version"]).replace(/^nats-server:\s*/, "");
  } catch (error) {
    return `unknown (${error instanceof Error ? error.message.split("\n")[0] : String(error)})`;
  }
}

function gitCommit(): string {
  try {
    const commit = run("git", ["rev-parse", "--short", "HEAD"]);
    const dirty = run("git", ["status", "--porcelain", "--untracked-files=no"]) !== "";
    return dirty ? `${commit}+uncommitted` : commit;
  } catch {
    return "unknown";
  }
}

function run(command: string, args: readonly string[]): string {
  return execFileSync(command, args, {
    cwd: repoRoot,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  }).trim();
}
