// A workflow's steps as a Mermaid flowchart (drawn by Mermaid in diagram.tsx): sequences top to
// bottom, `switch` as a decision with its branches, `parallel` and `map` as boxes holding their
// steps, child workflows as subroutines, `next` and `catch` as jumps. Pure: the unit tests run it.

interface StepLike {
  name: string;
  next?: string;
  catch?: { errors?: string[]; next: string }[];
  call?: string;
  switch?: { when?: string; default?: boolean; next?: string; steps?: StepLike[] }[];
  parallel?: { branches: Record<string, StepLike[]> };
  map?: { items: unknown; steps: StepLike[] };
  wait?: unknown;
  receive?: { signal?: string; subject?: string };
  emit?: { subject: string };
  workflow?: string;
  set?: unknown;
  return?: unknown;
  fail?: { error: string };
}

export interface WorkflowLike {
  name: string;
  steps: StepLike[];
}

const label = (text: string) =>
  `"${text.replace(/"/g, "#quot;").replace(/</g, "#lt;").replace(/>/g, "#gt;")}"`;
const short = (text: string, max = 40) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);

export function workflowDiagram(workflow: WorkflowLike): string {
  const lines = ["flowchart TD", `  start((start))`, `  done((end))`];
  const ids = new Map<string, string>();
  let counter = 0;
  const idOf = (name: string): string => {
    let id = ids.get(name);
    if (!id) {
      id = `s${++counter}`;
      ids.set(name, id);
    }
    return id;
  };
  const target = (name: string) => (name === "end" ? "done" : idOf(name));
  let failedNode = false;

  /** Draws `steps`; the last one (and any that falls through) continues to `exit`. Returns the first node. */
  const list = (steps: StepLike[], exit: string): string => {
    steps.forEach((step, index) => {
      const id = idOf(step.name);
      const following = index + 1 < steps.length ? idOf(steps[index + 1]!.name) : exit;
      const continuation = step.next !== undefined ? target(step.next) : following;
      for (const clause of step.catch ?? [])
        lines.push(
          `  ${id} -. ${label(`catch ${clause.errors?.join(", ") ?? "any"}`)} .-> ${target(clause.next)}`,
        );
      if (step.switch) {
        lines.push(`  ${id}{${label(step.name)}}`);
        for (const branch of step.switch) {
          const when = branch.default ? "default" : short(branch.when ?? "?");
          const into = branch.steps ? list(branch.steps, continuation) : target(branch.next ?? "end");
          lines.push(`  ${id} -- ${label(when)} --> ${into}`);
        }
        return;
      }
      if (step.parallel) {
        const join = `${id}_join`;
        lines.push(`  subgraph ${id}_box [${label(`parallel ${step.name}`)}]`, `  direction TB`);
        lines.push(`  ${id}[${label(`${step.name}: fork`)}]`);
        for (const [branch, branchSteps] of Object.entries(step.parallel.branches)) {
          const first = list(branchSteps, join);
          lines.push(`  ${id} -- ${label(branch)} --> ${first}`);
        }
        lines.push(`  ${join}[${label("join")}]`, "  end", `  ${join} --> ${continuation}`);
        return;
      }
      if (step.map) {
        const join = `${id}_join`;
        lines.push(`  subgraph ${id}_box [${label(`map ${step.name}: each item`)}]`, `  direction TB`);
        lines.push(`  ${id}[/${label(`${step.name}: for each item`)}/]`);
        const first = list(step.map.steps, join);
        lines.push(
          `  ${id} --> ${first}`,
          `  ${join}[${label("all items done")}]`,
          "  end",
          `  ${join} --> ${continuation}`,
        );
        return;
      }
      if (step.call !== undefined) lines.push(`  ${id}[${label(`${step.name}\ncall ${step.call}`)}]`);
      else if (step.workflow !== undefined)
        lines.push(`  ${id}[[${label(`${step.name}\nworkflow ${step.workflow}`)}]]`);
      else if (step.wait !== undefined) lines.push(`  ${id}([${label(`${step.name}\nwait`)}])`);
      else if (step.receive)
        lines.push(
          `  ${id}([${label(`${step.name}\nreceive ${step.receive.signal ?? step.receive.subject ?? ""}`)}])`,
        );
      else if (step.emit) lines.push(`  ${id}>${label(`${step.name}\nemit ${step.emit.subject}`)}]`);
      else if (step.return !== undefined) {
        lines.push(`  ${id}[${label(`${step.name}\nreturn`)}]`, `  ${id} --> done`);
        return;
      } else if (step.fail) {
        failedNode = true;
        lines.push(`  ${id}[${label(`${step.name}\nfail ${step.fail.error}`)}]`, `  ${id} --> failed`);
        return;
      } else lines.push(`  ${id}[${label(`${step.name}\nset`)}]`);
      lines.push(`  ${id} --> ${continuation}`);
    });
    return steps.length > 0 ? idOf(steps[0]!.name) : exit;
  };

  const first = list(workflow.steps, "done");
  lines.push(`  start --> ${first}`);
  if (failedNode) lines.push("  failed(((failed)))");
  return lines.join("\n");
}
