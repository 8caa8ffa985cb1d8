/** The results table on stdout, and the JSON and markdown files under bench/results/. */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { durabilityNote, type Environment } from "./environment.ts";
import type { Row } from "./scenario.ts";

const columns = ["scenario", "p50", "p90", "p99", "n", "throughput", "result", "target", "met?"] as const;

function ms(value: number): string {
  if (Math.abs(value) >= 100) return `${value.toFixed(0)} ms`;
  if (Math.abs(value) >= 10) return `${value.toFixed(1)} ms`;
  return `${value.toFixed(2)} ms`;
}

function cells(row: Row): string[] {
  const latency = row.latency;
  return [
    row.scenario,
    latency ? ms(latency.p50) : "",
    latency ? ms(latency.p90) : "",
    latency ? ms(latency.p99) : "",
    latency ? String(latency.n) : "",
    row.throughput ?? "",
    row.result ?? "",
    row.target,
    row.met,
  ];
}

/** A plain-text table, columns padded to their widest cell. */
export function formatTable(rows: readonly Row[]): string {
  const body = rows.map(cells);
  const widths = columns.map((header, i) => Math.max(header.length, ...body.map((line) => line[i]!.length)));
  const line = (values: readonly string[]) => values.map((value, i) => value.padEnd(widths[i]!)).join("  ");
  return [line(columns), line(widths.map((width) => "-".repeat(width))), ...body.map(line)].join("\n");
}

function markdownTable(rows: readonly Row[]): string {
  const escape = (text: string) => text.replaceAll("|", "\\|");
  return [
    `| ${columns.join(" | ")} |`,
    `|${columns.map(() => "---").join("|")}|`,
    ...rows.map((row) => `| ${cells(row).map(escape).join(" | ")} |`),
  ].join("\n");
}

export interface RunRecord {
  readonly environment: Environment;
  readonly command: string;
  readonly quick: boolean;
  readonly durationS: number;
  readonly rows: readonly Row[];
}

function markdown(run: RunRecord): string {
  const { environment: env } = run;
  const notes = run.rows
    .filter((row) => row.notes.length > 0)
    .map((row) => `- **${row.scenario}**: ${row.notes.join("; ")}`)
    .join("\n");
  return `# Benchmark results, ${env.date}${run.quick ? " (quick smoke run: small counts, not numbers to quote)" : ""}

- machine: ${env.machine.cpuModel}, ${env.machine.cores} cores, ${env.machine.memoryMb} MB memory, Linux ${env.machine.kernel}; load average at start ${env.machine.loadAverage.join(" / ")}
- node ${env.node}, nats-server ${env.natsServer} (cluster nodes: ${env.natsClusterServer}), commit ${env.commit}
- command: \`${run.command}\`, ${run.durationS.toFixed(0)} s
- every scenario on a fresh nats-server on the same machine; engine and workers are separate processes; payloads of about 256 bytes; warm-up discarded

> ${durabilityNote}

${markdownTable(run.rows)}

## Notes

${notes}
`;
}

/** Writes `<date>.json` and `<date>.md` (`<date>-quick`, and `-2`, `-3`… when the name is taken). */
export function writeResults(dir: string, run: RunRecord): { json: string; markdown: string } {
  mkdirSync(dir, { recursive: true });
  const base = `${run.environment.date}${run.quick ? "-quick" : ""}`;
  let name = base;
  for (let n = 2; existsSync(join(dir, `${name}.json`)) || existsSync(join(dir, `${name}.md`)); n++)
    name = `${base}-${n}`;
  const paths = { json: join(dir, `${name}.json`), markdown: join(dir, `${name}.md`) };
  const json = { ...run, durability: durabilityNote };
  writeFileSync(paths.json, `${JSON.stringify(json, null, 2)}\n`);
  writeFileSync(paths.markdown, markdown(run));
  return paths;
}
