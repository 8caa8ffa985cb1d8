/**
 * The child processes of `baton dev` (nats-server, the workers). Each runs in its own process
 * group, so that stopping it also stops whatever it started, and so that a Ctrl-C in the
 * terminal reaches `baton dev` alone, which then stops them in order (workers drain before the
 * engine and NATS go). Whatever way `baton dev` exits, children still running are SIGKILLed.
 */
import { spawn, type ChildProcess } from "node:child_process";

export interface ChildExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface DevChild {
  readonly name: string;
  readonly pid: number;
  /** Resolves when the process has exited, however. */
  readonly exited: Promise<ChildExit>;
  readonly hasExited: boolean;
  /** The last lines it printed, for the message when it dies. */
  tail(): string;
  /** SIGTERM to its group, SIGKILL after `graceMs`; resolves once it has exited. */
  stop(graceMs: number): Promise<ChildExit>;
  /** SIGKILL to its group, now. */
  kill(): void;
}

export interface StartChildOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** Called with each line of its stdout and stderr. */
  readonly onLine?: (line: string) => void;
}

const tailLines = 40;
const live = new Set<DevChild>();
let hasExitHook = false;

export function startChild(
  name: string,
  command: string,
  args: readonly string[],
  options: StartChildOptions = {},
): DevChild {
  installExitHook();
  const isPosix = process.platform !== "win32";
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ["ignore", "pipe", "pipe"],
    detached: isPosix,
  });
  const lines: string[] = [];
  const onLine = (line: string): void => {
    lines.push(line);
    if (lines.length > tailLines) lines.shift();
    options.onLine?.(line);
  };
  readLines(child.stdout, onLine);
  readLines(child.stderr, onLine);

  let exit: ChildExit | undefined;
  const exited = new Promise<ChildExit>((resolve) => {
    child.once("error", (error) => {
      onLine(`${name} could not start: ${error.message}`);
      exit ??= { code: null, signal: null };
      resolve(exit);
    });
    // 'close', not 'exit': by then its output has been read.
    child.once("close", (code, signal) => {
      exit ??= { code, signal };
      resolve(exit);
    });
  });

  const handle: DevChild = {
    name,
    pid: child.pid ?? -1,
    exited,
    get hasExited() {
      return exit !== undefined;
    },
    tail: () => lines.join("\n"),
    async stop(graceMs) {
      if (exit !== undefined) return exit;
      signalGroup(child, "SIGTERM");
      const timer = setTimeout(() => signalGroup(child, "SIGKILL"), graceMs);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
    kill: () => signalGroup(child, "SIGKILL"),
  };
  if (child.pid !== undefined) live.add(handle);
  void exited.then(() => {
    live.delete(handle);
    // The group may hold processes the child started and left behind.
    signalGroup(child, "SIGKILL");
  });
  return handle;
}

/** Describes how a child ended: `code 1`, `signal SIGKILL`. */
export function describeExit(exit: ChildExit): string {
  return exit.signal !== null ? `signal ${exit.signal}` : `code ${exit.code ?? "?"}`;
}

function readLines(stream: NodeJS.ReadableStream | null, onLine: (line: string) => void): void {
  if (stream === null) return;
  let partial = "";
  stream.setEncoding("utf8");
  stream.on("data", (chunk: string) => {
    const parts = (partial + chunk).split("\n");
    partial = parts.pop() ?? "";
    for (const part of parts) onLine(part.replace(/\r$/, ""));
  });
  stream.on("end", () => {
    if (partial !== "") onLine(partial);
    partial = "";
  });
}

function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    // The negative pid signals the whole process group: the child was spawned detached.
    process.kill(process.platform === "win32" ? child.pid : -child.pid, signal);
  } catch {
    // Already gone.
  }
}

/** However `baton dev` ends (an uncaught error, process.exit), no child outlives it. */
function installExitHook(): void {
  if (hasExitHook) return;
  hasExitHook = true;
  process.on("exit", () => {
    for (const child of live) child.kill();
  });
}
