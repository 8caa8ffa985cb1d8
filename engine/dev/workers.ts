/**
 * The example workers of `baton dev`: one child process, `baton worker` on every module of the
 * functions directory, exactly as a user would run it (and as honest: a function that crashes
 * its worker does not take the engine down).
 */
import { readdirSync } from "node:fs";
import { extname, join, relative } from "node:path";
import { withoutNatsAccess } from "../../sdk/nats-access.ts";
import { packagePath } from "../package-root.ts";
import { describeExit, startChild, type DevChild } from "./child-process.ts";

const batonBin = packagePath("bin/baton.mjs");
const moduleExtensions = new Set([".ts", ".mts", ".js", ".mjs"]);

/** The ES modules directly in `dir`, sorted; none when the directory does not exist. */
export function findFunctionModules(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir, { withFileTypes: true })
      .filter((entry) => entry.isFile() && moduleExtensions.has(extname(entry.name)))
      .filter((entry) => !entry.name.endsWith(".d.ts") && !/\.test\.[mc]?[jt]s$/.test(entry.name))
      .map((entry) => entry.name);
  } catch {
    return [];
  }
  return names.sort().map((name) => join(dir, name));
}

/**
 * Starts `baton worker` on `modules` against `natsUrl` and resolves once it serves (its
 * `serving` log line); rejects with its output when it exits first.
 */
export async function startWorkers(options: {
  modules: readonly string[];
  natsUrl: string;
  /** `baton dev` runs the nats-server: the worker connects without credentials. */
  ownServer?: boolean;
  onLine: (line: string) => void;
  readyTimeoutMs?: number;
}): Promise<DevChild> {
  let isServing = false;
  let onServing: (() => void) | undefined;
  // Readiness is the worker's "serving" line, logged at info: the worker logs at info at least,
  // and what the user's BATON_LOG_LEVEL leaves out is dropped here.
  const userLevel = process.env.BATON_LOG_LEVEL ?? "info";
  const threshold = logLevels.indexOf(userLevel);
  const env: NodeJS.ProcessEnv = {
    ...(options.ownServer === true ? withoutNatsAccess(process.env) : process.env),
    BATON_LOG_LEVEL: userLevel === "debug" ? "debug" : "info",
    NATS_URL: options.natsUrl,
    BATON_WORKER_NAME: process.env.BATON_WORKER_NAME ?? "dev-worker",
    // On a laptop, Ctrl-C should not wait half a minute for a slow function.
    BATON_WORKER_DRAIN_TIMEOUT_MS: process.env.BATON_WORKER_DRAIN_TIMEOUT_MS ?? "5000",
  };
  const child = startChild(
    "worker",
    process.execPath,
    [batonBin, "worker", ...options.modules.map((module) => relative(process.cwd(), module) || module)],
    {
      env,
      onLine: (line) => {
        if (!isServing && /"msg":"serving"/.test(line)) {
          isServing = true;
          onServing?.();
        }
        if (logLevels.indexOf(levelOf(line)) >= threshold) options.onLine(formatLogLine(line));
      },
    },
  );
  const timeoutMs = options.readyTimeoutMs ?? 60_000;
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`the worker did not start serving within ${timeoutMs} ms:\n${child.tail()}`)),
        timeoutMs,
      );
      onServing = () => {
        clearTimeout(timer);
        resolve();
      };
      if (isServing) onServing();
      // Once serving, this rejection is a no-op: a settled promise stays settled.
      void child.exited.then((exit) => {
        clearTimeout(timer);
        reject(new Error(`the worker exited while starting (${describeExit(exit)}):\n${child.tail()}`));
      });
    });
  } catch (error) {
    await child.stop(5_000);
    throw error;
  }
  return child;
}

const logLevels = ["debug", "info", "warn", "error", "silent"];

/** The level of a JSON log line; anything else (a crash's stack trace) counts as an error. */
function levelOf(line: string): string {
  return /^\{.*"level":"(debug|info|warn|error)"/.exec(line)?.[1] ?? "error";
}

/** A worker's JSON log line as one readable line: `info serving functions=[...]`. */
export function formatLogLine(line: string): string {
  if (!line.startsWith("{")) return line;
  try {
    const { time: _time, level, msg, ...fields } = JSON.parse(line) as Record<string, unknown>;
    const rest = Object.entries(fields)
      .filter(([key]) => key !== "stack")
      .map(([key, value]) => `${key}=${typeof value === "string" ? value : JSON.stringify(value)}`)
      .join(" ");
    return `${typeof level === "string" ? level : "info"} ${typeof msg === "string" ? msg : ""}${rest === "" ? "" : ` ${rest}`}`;
  } catch {
    return line;
  }
}
