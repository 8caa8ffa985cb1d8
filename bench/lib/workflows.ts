/** The payload every scenario sends and the chain workflow several scenarios run. */
import { newExecutionId } from "../../engine/orchestrator/ids.ts";
import type { Stack } from "./stack.ts";

/** Every benchmark message carries about this many bytes of JSON (design/benchmarks.md). */
export const payloadBytes = 256;

/** `{ "pad": "xx…" }`, exactly `payloadBytes` long as JSON. */
export function payload(): { pad: string } {
  return { pad: "x".repeat(payloadBytes - JSON.stringify({ pad: "" }).length) };
}

/** The payload as the bytes of a NATS message. */
export function payloadData(): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(payload()));
}

/**
 * A chain of `length` calls of `noop`. A call without `with` takes the previous step's output
 * (the first takes the execution input), so the 256-byte input travels through every step.
 */
export function chainWorkflow(name: string, length: number): string {
  const steps = Array.from({ length }, (_, i) => `  - name: step-${i + 1}\n    call: noop\n`).join("");
  return `baton: v1\nname: ${name}\nsteps:\n${steps}`;
}

/**
 * Submits a noop chain of `length` steps named `name` and warms it up with ten runs; resolves with
 * a function that runs one more, from its start to its end in history (the tools' unit of work).
 */
export async function sequentialChains(
  stack: Pick<Stack, "executions" | "history">,
  name: string,
  length: number,
): Promise<() => Promise<void>> {
  await stack.executions.apply(chainWorkflow(name, length));
  const runChain = async (): Promise<void> => {
    const id = newExecutionId();
    const end = stack.history.expectEnd(id);
    await stack.executions.start(name, payload(), { id });
    await end;
  };
  for (let i = 0; i < 10; i++) await runChain();
  return runChain;
}
