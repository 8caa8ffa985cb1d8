/**
 * The workflow files a command argument stands for: the file itself, or every `*.yaml` and
 * `*.yml` file directly inside a directory (not recursive, so `workflows/invalid/` stays out of
 * `baton apply -f workflows`), sorted.
 */
import { readdir, stat } from "node:fs/promises";
import { extname, join } from "node:path";

const workflowExtensions = new Set([".yaml", ".yml"]);

/** A file or directory that could not be read: the caller's input, reported as such. */
export class UnreadableError extends Error {
  override name = "UnreadableError";
}

const reasons: Readonly<Record<string, string>> = {
  ENOENT: "no such file or directory",
  EACCES: "permission denied",
  EISDIR: "is a directory",
  ENOTDIR: "not a directory",
};

/** An `UnreadableError` that says why `file` could not be read, in words. */
export function unreadable(file: string, error: unknown): UnreadableError {
  const code = typeof error === "object" && error !== null && "code" in error ? String(error.code) : "";
  const reason = reasons[code] ?? (error instanceof Error ? error.message : String(error));
  return new UnreadableError(`cannot read ${file}: ${reason}`, { cause: error });
}

/** The workflow files `argument` stands for; throws `UnreadableError` when there are none. */
export async function workflowFilesOf(argument: string): Promise<string[]> {
  let isDirectory: boolean;
  try {
    isDirectory = (await stat(argument)).isDirectory();
  } catch (error) {
    throw unreadable(argument, error);
  }
  if (!isDirectory) return [argument];
  let entries;
  try {
    entries = await readdir(argument, { withFileTypes: true });
  } catch (error) {
    throw unreadable(argument, error);
  }
  const files = entries
    .filter((entry) => entry.isFile() && workflowExtensions.has(extname(entry.name)))
    .map((entry) => join(argument, entry.name))
    .sort();
  if (files.length === 0) throw new UnreadableError(`no *.yaml or *.yml files in directory ${argument}`);
  return files;
}
