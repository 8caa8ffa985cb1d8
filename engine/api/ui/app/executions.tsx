// The executions: newest first, filtered by workflow and status, paged with the API's cursors,
// and re-read every two seconds so that new executions and status changes show up by themselves.
import { useEffect, useState } from "preact/hooks";
import { api, type ExecutionSummary } from "./api.ts";
import { dateTime, duration } from "./format.ts";

const statuses = ["", "running", "waiting", "succeeded", "failed", "cancelled", "timed_out"];
const pageSize = 25;
const refreshMs = 2_000;

export function ExecutionsPage() {
  const [workflows, setWorkflows] = useState<string[]>([]);
  const [workflow, setWorkflow] = useState("");
  const [status, setStatus] = useState("");
  // The cursors of the pages before this one (the first page has none).
  const [cursors, setCursors] = useState<string[]>([]);
  const [page, setPage] = useState<{ items: ExecutionSummary[]; next?: string } | null>(null);
  const [error, setError] = useState("");

  useEffect(() => {
    void api<{ items: { name: string }[] }>("/v1/workflows")
      .then((list) => setWorkflows(list.items.map((item) => item.name)))
      .catch(() => undefined);
  }, []);

  const cursor = cursors.at(-1);
  useEffect(() => {
    const query = new URLSearchParams({ limit: String(pageSize) });
    if (workflow) query.set("workflow", workflow);
    if (status) query.set("status", status);
    if (cursor) query.set("cursor", cursor);
    const load = () =>
      api<{ items: ExecutionSummary[]; next?: string }>(`/v1/executions?${query}`)
        .then((loaded) => {
          setPage(loaded);
          setError("");
        })
        .catch((failure: Error) => setError(failure.message));
    void load();
    const timer = setInterval(() => void load(), refreshMs);
    return () => clearInterval(timer);
  }, [workflow, status, cursor]);

  const filter = (apply: () => void) => {
    apply();
    setCursors([]);
  };

  return (
    <section>
      <div class="row">
        <h2 style={{ margin: 0 }}>Executions</h2>
        <select
          aria-label="workflow"
          value={workflow}
          onChange={(event) => filter(() => setWorkflow(event.currentTarget.value))}
        >
          <option value="">every workflow</option>
          {workflows.map((name) => (
            <option key={name} value={name}>
              {name}
            </option>
          ))}
        </select>
        <select
          aria-label="status"
          value={status}
          onChange={(event) => filter(() => setStatus(event.currentTarget.value))}
        >
          {statuses.map((name) => (
            <option key={name} value={name}>
              {name || "every status"}
            </option>
          ))}
        </select>
        <span class="muted">updates every {refreshMs / 1000} s</span>
      </div>
      {error && <p class="error">{error}</p>}
      <table data-testid="executions">
        <thead>
          <tr>
            <th>execution</th>
            <th>workflow</th>
            <th>status</th>
            <th>started</th>
            <th>took</th>
          </tr>
        </thead>
        <tbody>
          {(page?.items ?? []).map((execution) => (
            <tr key={execution.id}>
              <td>
                <a href={`#/executions/${execution.id}`}>{execution.id}</a>
              </td>
              <td>
                {execution.workflow} <span class="muted">r{execution.revision}</span>
              </td>
              <td>
                <span class={`status ${execution.status}`}>{execution.status}</span>
              </td>
              <td>{dateTime(execution.startedAt)}</td>
              <td>{duration(execution.startedAt, execution.endedAt)}</td>
            </tr>
          ))}
          {page && page.items.length === 0 && (
            <tr>
              <td colSpan={5} class="muted">
                No execution on this page.
              </td>
            </tr>
          )}
        </tbody>
      </table>
      <div class="row">
        <button
          type="button"
          disabled={cursors.length === 0}
          onClick={() => setCursors(cursors.slice(0, -1))}
        >
          Newer
        </button>
        <button
          type="button"
          disabled={!page?.next}
          onClick={() => page?.next && setCursors([...cursors, page.next])}
        >
          Older
        </button>
      </div>
    </section>
  );
}
