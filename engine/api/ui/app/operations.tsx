// Workers (live, with the functions each serves) and trigger deliveries (with the executions
// they started and the workflows that refused them), re-read every few seconds.
import { useEffect, useState } from "preact/hooks";
import { api } from "./api.ts";
import { dateTime } from "./format.ts";

function usePolled<T>(path: string, everyMs: number): { data: T | null; error: string } {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState("");
  useEffect(() => {
    const load = () =>
      api<T>(path)
        .then((loaded) => {
          setData(loaded);
          setError("");
        })
        .catch((failure: Error) => setError(failure.message));
    void load();
    const timer = setInterval(() => void load(), everyMs);
    return () => clearInterval(timer);
  }, [path, everyMs]);
  return { data, error };
}

interface Worker {
  worker: string;
  node: string;
  functions: { name: string; lane: string }[];
  concurrency?: number;
  effectConcurrency?: number;
  running: number;
  startedAt: string;
  seenAt: string;
}

export function WorkersPage() {
  const { data, error } = usePolled<{ items: Worker[] }>("/v1/workers", 3_000);
  return (
    <section>
      <h2>Workers</h2>
      {error && <p class="error">{error}</p>}
      <table data-testid="workers">
        <thead>
          <tr>
            <th>worker</th>
            <th>node</th>
            <th>functions</th>
            <th>running</th>
            <th>slots (pure / effect)</th>
            <th>up since</th>
            <th>last heartbeat</th>
          </tr>
        </thead>
        <tbody>
          {(data?.items ?? []).map((worker) => (
            <tr key={worker.worker}>
              <td>{worker.worker}</td>
              <td>{worker.node}</td>
              <td>{[...new Set(worker.functions.map((fn) => fn.name))].join(", ")}</td>
              <td>{worker.running}</td>
              <td>
                {worker.concurrency ?? "?"} / {worker.effectConcurrency ?? "?"}
              </td>
              <td>{dateTime(worker.startedAt)}</td>
              <td>{dateTime(worker.seenAt)}</td>
            </tr>
          ))}
          {data && data.items.length === 0 && (
            <tr>
              <td colSpan={7} class="muted">
                No live worker.
              </td>
            </tr>
          )}
        </tbody>
      </table>
    </section>
  );
}

interface Delivery {
  source: string;
  id: string;
  type: string;
  receivedAt: string;
  executions: { workflow: string; execution: string }[];
  rejected?: { workflow: string; reason: string }[];
}

export function DeliveriesPage() {
  const { data, error } = usePolled<{ items: Delivery[] }>("/v1/deliveries?limit=100", 3_000);
  return (
    <section>
      <h2>Deliveries</h2>
      <p class="muted">
        Events that came in through triggers (webhooks, schedules, queues, infra, http routes).
      </p>
      {error && <p class="error">{error}</p>}
      <table data-testid="deliveries">
        <thead>
          <tr>
            <th>received</th>
            <th>source</th>
            <th>type</th>
            <th>delivery</th>
            <th>started</th>
            <th>refused by</th>
          </tr>
        </thead>
        <tbody>
          {(data?.items ?? []).map((delivery) => (
            <tr key={`${delivery.source}:${delivery.id}`}>
              <td>{dateTime(delivery.receivedAt)}</td>
              <td>{delivery.source}</td>
              <td>{delivery.type}</td>
              <td>
                <code>{delivery.id}</code>
              </td>
              <td>
                {delivery.executions.map((started) => (
                  <div key={started.execution}>
                    {started.workflow}: <a href={`#/executions/${started.execution}`}>{started.execution}</a>
                  </div>
                ))}
              </td>
              <td>
                {(delivery.rejected ?? []).map((refusal) => (
                  <div key={refusal.workflow}>
                    {refusal.workflow}: <span class="muted">{refusal.reason}</span>
                  </div>
                ))}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
