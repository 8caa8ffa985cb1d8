/**
 * The data directory of `baton dev` (`BATON_DATA_DIR`, default `./.baton`): JetStream's store,
 * kept across restarts, and `dev.json`, which says which `baton dev` uses the directory and which
 * children it started. Two `baton dev` on one directory would share a JetStream store, so the
 * second refuses to start; and children left behind by one that was killed outright (SIGKILL
 * gives it no chance to stop them) are stopped by the next start.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";

interface ProcessRecord {
  readonly pid: number;
  readonly name: string;
  /** Its command line (Linux /proc), to tell it from another process that got the same pid. */
  readonly cmdline: string | undefined;
}

interface DevRecord {
  readonly dev: ProcessRecord;
  readonly children: ProcessRecord[];
}

export class DataDirInUseError extends Error {
  override name = "DataDirInUseError";
}

export interface DataDir {
  readonly path: string;
  /** Notes a child process, so that a later start can stop it if this process dies without doing so. */
  recordChild(name: string, pid: number): void;
  /** Says the directory is free again (after the children have stopped). */
  release(): void;
}

/**
 * Creates the directory if needed and takes it for this process; stops children a killed
 * `baton dev` left behind (reported through `log`).
 */
export async function takeDataDir(path: string, log: (line: string) => void): Promise<DataDir> {
  const dir = resolve(path);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, "dev.json");
  const previous = readRecord(file);
  if (previous !== undefined) {
    if (processState(previous.dev) !== "gone") {
      throw new DataDirInUseError(
        `another baton dev (pid ${previous.dev.pid}) is using ${dir}; stop it first, or give this one its own BATON_DATA_DIR (if it is not running, remove ${file})`,
      );
    }
    const leftovers = previous.children.filter((child) => processState(child) === "running");
    for (const child of leftovers) {
      log(`stopping ${child.name} (pid ${child.pid}), left running by a baton dev that did not stop cleanly`);
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        // Gone meanwhile.
      }
    }
    // The old nats-server must be gone before a new one opens the same store.
    await waitUntilGone(leftovers.map((child) => child.pid));
  }
  const record: DevRecord = { dev: describeProcess("baton dev", process.pid), children: [] };
  writeFileSync(file, `${JSON.stringify(record, null, 2)}\n`);
  return {
    path: dir,
    recordChild(name, pid) {
      record.children.push(describeProcess(name, pid));
      writeFileSync(file, `${JSON.stringify(record, null, 2)}\n`);
    },
    release() {
      rmSync(file, { force: true });
    },
  };
}

function readRecord(file: string): DevRecord | undefined {
  try {
    return JSON.parse(readFileSync(file, "utf8")) as DevRecord;
  } catch {
    return undefined;
  }
}

function describeProcess(name: string, pid: number): ProcessRecord {
  return { pid, name, cmdline: readCmdline(pid) };
}

/**
 * Whether the recorded process still runs: `running` when its pid is alive with the same command
 * line, `gone` when the pid is dead or is someone else's, `unknown` when the pid is alive and
 * there is no /proc to compare command lines (then the caller is careful: it neither shares the
 * store nor kills what may be a stranger).
 */
function processState(record: ProcessRecord): "running" | "gone" | "unknown" {
  if (!isAlive(record.pid)) return "gone";
  const cmdline = readCmdline(record.pid);
  if (cmdline === undefined || record.cmdline === undefined) return "unknown";
  return cmdline === record.cmdline ? "running" : "gone";
}

/** Whether `pid` is a live process of ours (not a zombie waiting to be reaped). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false; // ESRCH, or EPERM: another user's process, so not one we started.
  }
  try {
    // /proc/<pid>/stat: "pid (comm) S ...": the state follows the last ")".
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return true; // No /proc: the signal test is all there is.
  }
}

async function waitUntilGone(pids: readonly number[], timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (pids.some(isAlive) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
}

function readCmdline(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8");
  } catch {
    return undefined;
  }
}
