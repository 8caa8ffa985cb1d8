// Log compaction (workflows/hourly-log-compaction.yaml): list the segments written before the
// hour, then compact them into one file. Serve them with `baton worker functions/logs.ts`; they
// work in BATON_LOG_DIR.
import { appendFile, readdir, readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { BatonError, defineFunction } from "../sdk/index.ts";

const compactedPrefix = "compacted-";

function logDir(): string {
  const dir = process.env.BATON_LOG_DIR;
  if (dir === undefined || dir === "")
    throw new BatonError("LogDirMissing", "set BATON_LOG_DIR to the directory holding the log segments");
  return dir;
}

const beforeSchema = {
  type: "object",
  required: ["before"],
  properties: { before: { type: "string", format: "date-time" } },
} as const;

/** `{ before }` → `{ segments }`: the `*.log` segments last written before that time, oldest first (compacted files excluded). */
export const logsListSegments = defineFunction({
  name: "logs-list-segments",
  input: beforeSchema,
  async handler(input: { before: string }) {
    const dir = logDir();
    const before = Date.parse(input.before);
    const found: { name: string; mtime: number }[] = [];
    for (const name of await readdir(dir)) {
      if (!name.endsWith(".log") || name.startsWith(compactedPrefix)) continue;
      const { mtimeMs } = await stat(join(dir, name));
      if (mtimeMs < before) found.push({ name, mtime: mtimeMs });
    }
    found.sort((a, b) => a.mtime - b.mtime || a.name.localeCompare(b.name));
    return { segments: found.map((segment) => segment.name) };
  },
});

/**
 * `{ before, segments }` → `{ compacted, into }`: appends the segments, in order, to
 * `compacted-<before>.log` and removes them. Run again after a crash, it skips the segments
 * already removed, so no line is written twice unless the crash fell between a segment's append
 * and its removal.
 */
export const logsCompact = defineFunction({
  name: "logs-compact",
  effect: true,
  input: {
    type: "object",
    required: ["before", "segments"],
    properties: {
      before: { type: "string", format: "date-time" },
      segments: { type: "array", items: { type: "string", pattern: "^[^/\\\\]+\\.log$" } },
    },
  },
  async handler(input: { before: string; segments: string[] }) {
    const dir = logDir();
    const into = `${compactedPrefix}${input.before.replaceAll(":", "-")}.log`;
    let compacted = 0;
    for (const segment of input.segments) {
      const path = join(dir, segment);
      let text: string;
      try {
        text = await readFile(path, "utf8");
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "ENOENT") continue;
        throw error;
      }
      await appendFile(join(dir, into), text.endsWith("\n") || text === "" ? text : `${text}\n`);
      await rm(path);
      compacted++;
    }
    return { compacted, into };
  },
});
