// Summarises V8 CPU profiles (from `npm run bench -- <scenario> --profile <dir>`): where the
// process spent its own CPU time, by function and by file or package.
//
//   node --import tsx bench/tools/profile-summary.ts <file.cpuprofile | dir>... [--top 25]
//     [--callers <regexp of a function name> [--depth 4]]   (who calls the hot functions)
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { repoRoot } from "../lib/processes.ts";

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly hitCount?: number;
  readonly children?: readonly number[];
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples?: readonly number[];
  readonly timeDeltas?: readonly number[];
}

/** Where a frame's code lives: a package, a file of the repository, Node's own, or V8's. */
function place(url: string): string {
  if (url === "") return "(native / V8)";
  if (url.startsWith("node:")) return url;
  const path = url.replace(/^file:\/\//, "");
  const modules = path.lastIndexOf("node_modules/");
  if (modules !== -1) {
    const parts = path.slice(modules + "node_modules/".length).split("/");
    return `pkg ${parts[0]!.startsWith("@") ? `${parts[0]}/${parts[1]}` : parts[0]}`;
  }
  return relative(repoRoot, path);
}

function addTo(totals: Map<string, number>, key: string, ms: number): void {
  totals.set(key, (totals.get(key) ?? 0) + ms);
}

function top(totals: Map<string, number>, total: number, count: number): string {
  return [...totals.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(
      ([key, ms]) =>
        `${((100 * ms) / total).toFixed(1).padStart(5)}%  ${ms.toFixed(0).padStart(7)} ms  ${key}`,
    )
    .join("\n");
}

function frameName(frame: CallFrame): string {
  return `${frame.functionName || "(anonymous)"}  ${place(frame.url)}:${frame.lineNumber + 1}`;
}

/**
 * The call paths (up to `depth` callers) that spend the self time of functions whose name
 * matches `pattern`: who calls the hot native function.
 */
function callers(
  profile: CpuProfile,
  selfUs: ReadonlyMap<number, number>,
  pattern: RegExp,
  depth: number,
  count: number,
): string {
  const parents = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parents.set(child, node.id);
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const paths = new Map<string, number>();
  let total = 0;
  for (const [id, us] of selfUs) {
    const node = nodes.get(id);
    if (node === undefined || !pattern.test(node.callFrame.functionName)) continue;
    const chain: string[] = [];
    for (let at = parents.get(id); at !== undefined && chain.length < depth; at = parents.get(at))
      chain.push(frameName(nodes.get(at)!.callFrame));
    addTo(paths, chain.join("  <  "), us / 1_000);
    total += us / 1_000;
  }
  return top(paths, total, count);
}

export function summarizeProfile(
  profile: CpuProfile,
  count: number,
  callerPattern?: RegExp,
  callerDepth = 4,
): string {
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  // Self time per node from the samples and their time deltas (µs); hitCount × mean interval if absent.
  const selfUs = new Map<number, number>();
  if (profile.samples !== undefined && profile.timeDeltas !== undefined) {
    profile.samples.forEach((id, i) =>
      selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas![i + 1] ?? 0)),
    );
  } else {
    const hits = profile.nodes.reduce((sum, node) => sum + (node.hitCount ?? 0), 0);
    const interval = (profile.endTime - profile.startTime) / Math.max(hits, 1);
    for (const node of profile.nodes) selfUs.set(node.id, (node.hitCount ?? 0) * interval);
  }
  const byFunction = new Map<string, number>();
  const byPlace = new Map<string, number>();
  let busyMs = 0;
  let idleMs = 0;
  for (const [id, us] of selfUs) {
    const frame = nodes.get(id)?.callFrame;
    if (frame === undefined) continue;
    const ms = us / 1_000;
    if (frame.functionName === "(idle)") {
      idleMs += ms;
      continue;
    }
    busyMs += ms;
    const where = place(frame.url);
    addTo(byFunction, frameName(frame), ms);
    addTo(byPlace, where, ms);
  }
  const wallMs = (profile.endTime - profile.startTime) / 1_000;
  return [
    `wall ${(wallMs / 1_000).toFixed(1)} s, busy ${(busyMs / 1_000).toFixed(1)} s (${((100 * busyMs) / wallMs).toFixed(0)}% of one core), idle ${(idleMs / 1_000).toFixed(1)} s`,
    "",
    "self time by file or package:",
    top(byPlace, busyMs, count),
    "",
    "self time by function:",
    top(byFunction, busyMs, count),
    ...(callerPattern === undefined
      ? []
      : [
          "",
          `callers of ${String(callerPattern)}:`,
          callers(profile, selfUs, callerPattern, callerDepth, count),
        ]),
  ].join("\n");
}

function profilesIn(paths: readonly string[]): string[] {
  return paths.flatMap((path) =>
    statSync(path).isDirectory()
      ? readdirSync(path, { recursive: true, encoding: "utf8" })
          .filter((file) => file.endsWith(".cpuprofile"))
          .map((file) => join(path, file))
      : [path],
  );
}

/** Removes `--flag value` from `args` and returns the value. */
function takeFlag(args: string[], flag: string): string | undefined {
  const at = args.indexOf(flag);
  return at === -1 ? undefined : args.splice(at, 2)[1];
}

const args = process.argv.slice(2);
const count = Number(takeFlag(args, "--top") ?? 25);
const callerText = takeFlag(args, "--callers");
const depth = Number(takeFlag(args, "--depth") ?? 4);
if (args.length === 0) {
  process.stderr.write(
    "usage: node --import tsx bench/tools/profile-summary.ts <file.cpuprofile | dir>... [--top 25] [--callers <regexp> [--depth 4]]\n",
  );
  process.exit(2);
}
const callerPattern = callerText === undefined ? undefined : new RegExp(callerText);
for (const file of profilesIn(args)) {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  process.stdout.write(`== ${file}\n${summarizeProfile(profile, count, callerPattern, depth)}\n\n`);
}
