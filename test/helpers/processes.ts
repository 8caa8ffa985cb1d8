// Child processes for integration and system tests: spawn, collect output, wait for a line, kill.
// Every child is tracked so that none outlives the test process, whatever way it ends.
import { spawn, type ChildProcess } from "node:child_process";

/** How a child process ended. */
export interface ProcessExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface SpawnProcessOptions {
  /** A short name used in error messages and echoed output. Default: the command's base name. */
  readonly name?: string;
  readonly cwd?: string;
  /** Extra environment variables, merged over `process.env`. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Echo the child's output to this process's stderr. Default: `BATON_TEST_VERBOSE=1`. */
  readonly echo?: boolean;
  /** How many lines of output to keep (the oldest go first). Default 10,000. */
  readonly maxLines?: number;
}

export interface WaitForLineOptions {
  /** Give up after this long. Default 20 s. */
  readonly timeoutMs?: number;
  /** Only consider lines from this index on (see `lineCount()`); default 0, every line seen so far. */
  readonly since?: number;
}

export interface OutputLine {
  readonly stream: "stdout" | "stderr";
  readonly text: string;
}

/** A running (or finished) child process with its output. */
export interface TestProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** How it ended, or `undefined` while it runs. */
  readonly exit: ProcessExit | undefined;
  /** Stdout and stderr, interleaved in arrival order. */
  output(): string;
  stdout(): string;
  stderr(): string;
  /** The absolute index of the next line to arrive: pass it as `since` to wait for a new line only. */
  lineCount(): number;
  /**
   * Resolves with the match of the first line (stdout or stderr) that matches `pattern`; rejects
   * when the process exits first or the deadline passes, with the output tail in the message.
   */
  waitForLine(pattern: RegExp, options?: WaitForLineOptions): Promise<RegExpMatchArray>;
  /** Resolves when the process has exited (rejects after `timeoutMs`, default 20 s). */
  waitForExit(timeoutMs?: number): Promise<ProcessExit>;
  /**
   * Sends `signal` (default SIGTERM) to the process and its process group, escalates to SIGKILL
   * after `graceMs` (default 5 s), and resolves when it has exited.
   */
  kill(signal?: NodeJS.Signals, graceMs?: number): Promise<ProcessExit>;
}

const DEFAULT_TIMEOUT_MS = 20_000;
const OUTPUT_TAIL_LINES = 40;

const live = new Set<TestProcess>();
let hasExitHooks = false;

/**
 * Starts `command` with `args`. The child runs in its own process group (on POSIX) so that
 * `kill()` also ends whatever it started (an engine that runs nats-server, a worker's isolates).
 */
export function spawnProcess(
  command: string,
  args: readonly string[],
  options: SpawnProcessOptions = {},
): TestProcess {
  installExitHooks();
  const name = options.name ?? command.split("/").pop() ?? command;
  const echo = options.echo ?? process.env.BATON_TEST_VERBOSE === "1";
  const maxLines = options.maxLines ?? 10_000;
  const isPosix = process.platform !== "win32";

  const child = spawn(command, args, {
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: isPosix,
  });

  const lines: OutputLine[] = [];
  let dropped = 0;
  const lineListeners = new Set<() => void>();
  let exit: ProcessExit | undefined;
  let spawnError: Error | undefined;
  const exitListeners = new Set<() => void>();

  const pushLine = (stream: OutputLine["stream"], text: string): void => {
    lines.push({ stream, text });
    if (lines.length > maxLines) {
      lines.shift();
      dropped += 1;
    }
    if (echo) process.stderr.write(`[${name}] ${text}\n`);
    for (const listener of lineListeners) listener();
  };
  const collect = (stream: OutputLine["stream"], readable: NodeJS.ReadableStream | null): void => {
    if (readable === null) return;
    let partial = "";
    readable.setEncoding("utf8");
    readable.on("data", (chunk: string) => {
      const parts = (partial + chunk).split("\n");
      partial = parts.pop() ?? "";
      for (const part of parts) pushLine(stream, part.replace(/\r$/, ""));
    });
    readable.on("end", () => {
      if (partial !== "") pushLine(stream, partial);
      partial = "";
    });
  };
  collect("stdout", child.stdout);
  collect("stderr", child.stderr);

  const finish = (result: ProcessExit): void => {
    if (exit !== undefined) return;
    exit = result;
    live.delete(handle);
    for (const listener of exitListeners) listener();
  };
  // 'close' (not 'exit') so that all output has been read before waiters see the exit.
  child.on("close", (code, signal) => finish({ code, signal }));
  child.on("error", (error) => {
    spawnError = error;
    finish({ code: null, signal: null });
  });

  const text = (stream?: OutputLine["stream"]): string =>
    lines
      .filter((line) => stream === undefined || line.stream === stream)
      .map((line) => line.text)
      .join("\n");

  const describe = (what: string): Error => {
    const tail = lines
      .slice(-OUTPUT_TAIL_LINES)
      .map((line) => `  ${line.text}`)
      .join("\n");
    const cause = spawnError === undefined ? "" : ` (${spawnError.message})`;
    return new Error(`${name} (pid ${child.pid ?? "?"}): ${what}${cause}\n--- last output ---\n${tail}`, {
      cause: spawnError,
    });
  };

  const waitForExit = (timeoutMs = DEFAULT_TIMEOUT_MS): Promise<ProcessExit> =>
    new Promise((resolve, reject) => {
      if (exit !== undefined) return resolve(exit);
      const timer = setTimeout(() => {
        exitListeners.delete(onExit);
        reject(describe(`did not exit within ${timeoutMs} ms`));
      }, timeoutMs);
      const onExit = (): void => {
        clearTimeout(timer);
        exitListeners.delete(onExit);
        resolve(exit as ProcessExit);
      };
      exitListeners.add(onExit);
    });

  const handle: TestProcess = {
    name,
    child,
    pid: child.pid ?? -1,
    get exit() {
      return exit;
    },
    output: () => text(),
    stdout: () => text("stdout"),
    stderr: () => text("stderr"),
    lineCount: () => dropped + lines.length,
    waitForLine: (pattern, waitOptions = {}) =>
      new Promise((resolve, reject) => {
        const timeoutMs = waitOptions.timeoutMs ?? DEFAULT_TIMEOUT_MS;
        let next = Math.max(waitOptions.since ?? 0, dropped);
        const cleanup = (): void => {
          clearTimeout(timer);
          lineListeners.delete(scan);
          exitListeners.delete(onExit);
        };
        const scan = (): void => {
          next = Math.max(next, dropped);
          for (; next < dropped + lines.length; next += 1) {
            const match = lines[next - dropped]?.text.match(pattern);
            if (match) {
              cleanup();
              resolve(match);
              return;
            }
          }
        };
        const onExit = (): void => {
          scan();
          cleanup();
          reject(describe(`exited (${formatExit(exit)}) before printing a line matching ${String(pattern)}`));
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(describe(`printed no line matching ${String(pattern)} within ${timeoutMs} ms`));
        }, timeoutMs);
        lineListeners.add(scan);
        exitListeners.add(onExit);
        scan();
        if (exit !== undefined) onExit();
      }),
    waitForExit,
    kill: async (signal = "SIGTERM", graceMs = 5_000) => {
      if (exit !== undefined) return exit;
      signalProcess(child, signal);
      if (signal !== "SIGKILL") {
        try {
          return await waitForExit(graceMs);
        } catch {
          signalProcess(child, "SIGKILL");
        }
      }
      return waitForExit();
    },
  };

  if (child.pid !== undefined) live.add(handle);
  return handle;
}

/** Starts a TypeScript file with Node and tsx: `node --import tsx <file> ...args`. */
export function spawnTsx(
  file: string,
  args: readonly string[] = [],
  options: SpawnProcessOptions = {},
): TestProcess {
  return spawnProcess(process.execPath, ["--import", "tsx", file, ...args], {
    name: file.split("/").pop() ?? file,
    ...options,
  });
}

/** Kills every child still running (SIGTERM, then SIGKILL after `graceMs`). For afterAll/afterEach. */
export async function killAllProcesses(graceMs = 5_000): Promise<void> {
  await Promise.all([...live].map((child) => child.kill("SIGTERM", graceMs)));
}

/**
 * Polls `probe` until it returns a value other than `undefined`, or throws when `timeoutMs`
 * passes. The last error the probe threw, if any, becomes the cause. For readiness checks
 * without fixed sleeps.
 */
export async function waitUntil<T>(
  description: string,
  probe: () => T | undefined | Promise<T | undefined>,
  { timeoutMs = DEFAULT_TIMEOUT_MS, intervalMs = 25 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${description}`, { cause: lastError });
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

export function formatExit(exit: ProcessExit | undefined): string {
  if (exit === undefined) return "running";
  return exit.signal !== null ? `signal ${exit.signal}` : `code ${exit.code ?? "?"}`;
}

function signalProcess(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    // The negative pid signals the whole process group (the child was spawned detached).
    process.kill(process.platform === "win32" ? child.pid : -child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // Already gone.
    }
  }
}

const exitHooks: (() => void)[] = [];

/**
 * A test process can end by returning, by process.exit() or by a signal (vitest stopping a
 * worker, Ctrl-C). In every case, SIGKILL the children synchronously and run the exit hooks, so
 * no nats-server or engine keeps running on a CI machine. On a signal, re-raise it when nobody
 * else handles it, so the default behaviour (exit) is kept.
 */
function installExitHooks(): void {
  if (hasExitHooks) return;
  hasExitHooks = true;
  const cleanUpNow = (): void => {
    for (const handle of live) signalProcess(handle.child, "SIGKILL");
    live.clear();
    for (const hook of exitHooks.splice(0)) {
      try {
        hook();
      } catch {
        // Best effort: the process is going away.
      }
    }
  };
  process.on("exit", cleanUpNow);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(signal, () => {
      cleanUpNow();
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    });
  }
}

/** Registers a hook that runs synchronously when the test process exits (e.g. removing temp dirs). */
export function onProcessExit(hook: () => void): void {
  installExitHooks();
  exitHooks.push(hook);
}
