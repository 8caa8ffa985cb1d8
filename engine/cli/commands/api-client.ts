/**
 * What the commands that talk to the HTTP API share: a client from BATON_URL and BATON_TOKEN,
 * JSON arguments (`--input '{"a":1}'` or `--input @file.json`), and one way of telling the user
 * what went wrong, with the exit codes every such command documents.
 */
import { readFile } from "node:fs/promises";
// From the client's own modules, not the SDK's index: `baton run` and the like start without the worker kit.
import { BatonClient, defaultApiUrl } from "../../../sdk/client/client.ts";
import {
  BatonApiError,
  BatonConnectionError,
  ExecutionFailedError,
  ResultTimeoutError,
  type ProblemDetail,
} from "../../../sdk/client/errors.ts";
import type { JsonValue } from "../../../sdk/protocol.ts";
import { UsageError, exitCodes, type Io } from "../command.ts";

/** The lines every API command's usage ends with. */
export const apiUsageFooter = `Environment: BATON_URL (default ${defaultApiUrl}), BATON_TOKEN (a token of the server's BATON_API_TOKENS).

Exit codes: 0 done; 1 the API refused the request (not found, invalid, already ended) or the
execution failed; 2 usage error, unreadable input, the API cannot be reached, or it refused the token.
`;

/** The one execution id a command takes, from its positional arguments. */
export function singleId(positionals: readonly string[]): string {
  if (positionals.length === 0) throw new UsageError("name the execution id (baton ls lists them)");
  if (positionals.length > 1) throw new UsageError(`takes one execution id, got ${positionals.length}`);
  return positionals[0]!;
}

/** A client of the API the environment names. */
export function createApiClient(env: NodeJS.ProcessEnv = process.env): BatonClient {
  const url = env.BATON_URL === undefined || env.BATON_URL === "" ? defaultApiUrl : env.BATON_URL;
  try {
    return new BatonClient({ url, token: env.BATON_TOKEN });
  } catch (error) {
    throw new UsageError(`BATON_URL: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/**
 * Runs `action` and turns the client's errors into a message on stderr and an exit code:
 * unreachable API or refused token → 2, a refusal or a failed execution → 1. Anything else is
 * not ours to explain and goes up (main prints it as a bug).
 */
export async function reportApiErrors(
  command: string,
  io: Io,
  action: () => Promise<number>,
): Promise<number> {
  try {
    return await action();
  } catch (error) {
    const report = describeApiError(error);
    if (report === undefined) throw error;
    io.stderr(`baton ${command}: ${report.message}\n`);
    return report.exitCode;
  }
}

/** The message and exit code for one of the client's errors; `undefined` for anything else. */
export function describeApiError(error: unknown): { message: string; exitCode: number } | undefined {
  if (error instanceof BatonConnectionError) {
    const hint =
      error.code === "RequestTimeout"
        ? "Is the engine overloaded or stuck? Check its log."
        : 'Is the engine running? Start it with "npm run dev" (baton dev), or point BATON_URL at it.';
    return { message: `${error.message}\n${hint}`, exitCode: exitCodes.usage };
  }
  if (error instanceof BatonApiError) {
    const isTokenProblem = error.status === 401 || error.status === 403;
    const hint = isTokenProblem ? "\nSet BATON_TOKEN to one of the server's BATON_API_TOKENS." : "";
    const problems = error.problems.map((problem) => `\n  ${formatProblemDetail(problem)}`).join("");
    return {
      message: `${error.code}: ${error.detail ?? error.title ?? `HTTP ${error.status}`}${problems}${hint}`,
      exitCode: isTokenProblem ? exitCodes.usage : exitCodes.failure,
    };
  }
  if (error instanceof ExecutionFailedError || error instanceof ResultTimeoutError) {
    return { message: error.message, exitCode: exitCodes.failure };
  }
  return undefined;
}

/** `line:col CODE path: message`, leaving out what the problem does not have. */
export function formatProblemDetail(problem: ProblemDetail): string {
  const where = problem.line === undefined ? "" : `${problem.line}:${problem.column ?? 1} `;
  const path = problem.path === undefined || problem.path === "" ? "" : `${problem.path}: `;
  return `${where}${problem.code} ${path}${problem.message}`;
}

/**
 * A JSON argument: the JSON text itself, or `@FILE` for a file's contents (`@-` for stdin).
 * `option` names it in messages (`--input`).
 */
export async function readJsonArgument(option: string, argument: string): Promise<JsonValue> {
  let text = argument;
  if (argument.startsWith("@")) {
    const file = argument.slice(1);
    try {
      text = file === "-" ? await readStdin() : await readFile(file, "utf8");
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new UsageError(`${option}: cannot read ${file === "-" ? "stdin" : file}: ${reason}`);
    }
  }
  try {
    return JSON.parse(text) as JsonValue;
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    const source = argument.startsWith("@") ? ` in ${argument.slice(1)}` : "";
    throw new UsageError(
      `${option} is not valid JSON${source} (${reason}); quote it for the shell, e.g. ${option} '{"name":"ana"}', or pass @file.json`,
    );
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}
