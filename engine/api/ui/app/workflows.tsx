// Workflows: the latest revision of each, its triggers (routes, schedules with their next fires,
// ...), its source, and a diagram of its steps drawn from the definition (diagram.ts).
import { useEffect, useState } from "preact/hooks";
import { api } from "./api.ts";
import { dateTime } from "./format.ts";
import { WorkflowDiagram } from "./diagram.tsx";

interface WorkflowSummary {
  name: string;
  revision: number;
  description?: string;
  updatedAt: string;
}

interface Workflow extends WorkflowSummary {
  source: string;
  triggers: Record<string, Record<string, unknown>>[];
  nextFires?: string[];
}

export function WorkflowsPage() {
  const [items, setItems] = useState<WorkflowSummary[] | null>(null);
  const [error, setError] = useState("");
  useEffect(() => {
    api<{ items: WorkflowSummary[] }>("/v1/workflows")
      .then((list) => setItems(list.items))
      .catch((failure: Error) => setError(failure.message));
  }, []);
  return (
    <section>
      <h2>Workflows</h2>
      {error && <p class="error">{error}</p>}
      <table data-testid="workflows">
        <thead>
          <tr>
            <th>workflow</th>
            <th>revision</th>
            <th>description</th>
            <th>updated</th>
          </tr>
        </thead>
        <tbody>
          {(items ?? []).map((workflow) => (
            <tr key={workflow.name}>
              <td>
                <a href={`#/workflows/${workflow.name}`}>{workflow.name}</a>
              </td>
              <td>{workflow.revision}</td>
              <td>{workflow.description}</td>
              <td>{dateTime(workflow.updatedAt)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

/** One trigger in words: `POST /train (async, public, 20/s)`, `schedule 0 * * * *`, ... */
function describeTrigger(trigger: Record<string, Record<string, unknown>>): string {
  const [source, raw = {}] = Object.entries(trigger)[0] ?? ["?", {}];
  const body = raw as Record<string, string | undefined>;
  switch (source) {
    case "http":
      return `${body.method ?? "POST"} ${String(body.path)} (${body.respond ?? "async"}, ${body.auth === "token" ? "token" : "public"}, ${body.rate ?? "20/s"})`;
    case "schedule":
      return `schedule ${String(body.cron)}${body.timezone ? ` (${body.timezone})` : ""}`;
    case "queue":
      return `queue ${String(body.subject)}`;
    default:
      return `${source} ${JSON.stringify(body.events ?? body)}`;
  }
}

export function WorkflowPage({ name }: { name: string }) {
  const [workflow, setWorkflow] = useState<Workflow | null>(null);
  const [error, setError] = useState("");
  useEffect(() => {
    api<Workflow>(`/v1/workflows/${name}`)
      .then(setWorkflow)
      .catch((failure: Error) => setError(failure.message));
  }, [name]);
  if (!workflow) return <p class={error ? "error" : "muted"}>{error || "Loading…"}</p>;
  return (
    <section>
      <div class="row">
        <h2 style={{ margin: 0 }}>{workflow.name}</h2>
        <span class="muted">revision {workflow.revision}</span>
        <a href={`#/executions?workflow=${workflow.name}`}>executions</a>
      </div>
      {workflow.description && <p>{workflow.description}</p>}
      <div class="card">
        <h3>Triggers</h3>
        {workflow.triggers.length === 0 && <p class="muted">None: started through the API.</p>}
        <ul>
          {workflow.triggers.map((trigger, index) => (
            <li key={index}>{describeTrigger(trigger)}</li>
          ))}
        </ul>
        {workflow.nextFires && (
          <p>Next fires: {workflow.nextFires.map((fire) => dateTime(fire)).join(", ")}</p>
        )}
      </div>
      <div class="card">
        <h3>Steps</h3>
        <WorkflowDiagram source={workflow.source} name={workflow.name} />
      </div>
      <div class="card">
        <h3>Source</h3>
        <pre>{workflow.source}</pre>
      </div>
    </section>
  );
}
