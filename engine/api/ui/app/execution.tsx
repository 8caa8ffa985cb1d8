// One execution: its status and progress, a timeline of its steps with their attempts, retries
// and timers (live while it runs), each step's attempts and errors, its input and output, the
// history, and the actions (signal, cancel, retry). Live through the events websocket, opened
// with the access token of GET /v1/executions/{id}/links.
import { useCallback, useEffect, useMemo, useState } from "preact/hooks";
import {
  api,
  websocketUrl,
  type ExecutionView,
  type HistoryEvent,
  type Links,
  type Progress,
} from "./api.ts";
import { dateTime, duration, json, time } from "./format.ts";
import { TimelineChart } from "./timeline-chart.tsx";
import { buildTimeline } from "./timeline.ts";

const traceUrl = document.body.dataset.traceUrl ?? "";

export function ExecutionPage({ id }: { id: string }) {
  const [view, setView] = useState<ExecutionView | null>(null);
  const [history, setHistory] = useState<HistoryEvent[]>([]);
  const [progress, setProgress] = useState<Progress | undefined>(undefined);
  const [error, setError] = useState<string>("");
  const [now, setNow] = useState(Date.now());
  const [live, setLive] = useState(false);

  const reload = useCallback(async () => {
    try {
      const [viewed, events] = await Promise.all([
        api<ExecutionView>(`/v1/executions/${id}`),
        api<{ items: HistoryEvent[] }>(`/v1/executions/${id}/history`),
      ]);
      setView(viewed);
      setHistory(events.items);
      if (viewed.progress) setProgress(viewed.progress);
      setError("");
    } catch (failure) {
      setError((failure as Error).message);
    }
  }, [id]);

  useEffect(() => {
    void reload();
  }, [reload]);

  const running = view !== null && (view.status === "running" || view.status === "waiting");

  // Live: follow the websocket while the execution runs; reread the view as events come.
  useEffect(() => {
    if (!running) return;
    let socket: WebSocket | undefined;
    let closed = false;
    void api<Links>(`/v1/executions/${id}/links`).then((links) => {
      if (closed) return;
      socket = new WebSocket(websocketUrl(links.events));
      socket.onopen = () => setLive(true);
      socket.onmessage = (message) => {
        const event = JSON.parse(message.data as string) as
          HistoryEvent | (Progress & { type: "AttemptProgress" });
        if (event.type === "AttemptProgress") setProgress(event as Progress);
        else void reload();
      };
      socket.onclose = () => {
        setLive(false);
        void reload();
      };
    });
    const ticker = setInterval(() => setNow(Date.now()), 500);
    return () => {
      closed = true;
      clearInterval(ticker);
      socket?.close();
    };
  }, [id, running, reload]);

  const timeline = useMemo(() => buildTimeline(history, now), [history, now]);
  if (!view) return <p class={error ? "error" : "muted"}>{error || "Loading…"}</p>;

  return (
    <section>
      <div class="row">
        <h2 style={{ margin: 0 }}>
          {view.workflow} <span class="muted">r{view.revision}</span>
        </h2>
        <span class={`status ${view.status}`} data-testid="execution-status">
          {view.status}
        </span>
        {live && <span class="muted">● live</span>}
        {traceUrl && view.traceId && (
          <a href={traceUrl.replace("{traceId}", view.traceId)} target="_blank" rel="noreferrer">
            trace
          </a>
        )}
      </div>
      <p class="muted">
        {id} · started {dateTime(view.startedAt)} · {duration(view.startedAt, view.endedAt)}
        {view.parent && (
          <>
            {" "}
            · {view.parent.kind} of{" "}
            <a href={`#/executions/${view.parent.execution}`}>{view.parent.execution}</a>
          </>
        )}
      </p>
      {running && progress && (
        <p data-testid="progress">
          <progress max={1} value={progress.fraction} /> {Math.round(progress.fraction * 100)}% ·{" "}
          {progress.step} attempt {progress.attempt}
          {progress.message ? ` · ${progress.message}` : ""}
        </p>
      )}
      <Actions id={id} status={view.status} onDone={reload} />
      {error && <p class="error">{error}</p>}

      <div class="card">
        <h3>Timeline</h3>
        <TimelineChart rows={timeline.rows} />
      </div>

      <div class="card">
        <h3>Steps</h3>
        <table data-testid="steps">
          <thead>
            <tr>
              <th>step</th>
              <th>status</th>
              <th>attempts</th>
              <th>runs</th>
              <th>started</th>
              <th>took</th>
              <th>input</th>
              <th>output</th>
              <th>errors</th>
            </tr>
          </thead>
          <tbody>
            {view.steps.map((step) => (
              <tr key={step.name} data-step={step.name}>
                <td>
                  {step.name}
                  {step.effect && <span class="muted"> (effect)</span>}
                </td>
                <td>
                  <span class={`status ${step.status}`}>{step.status}</span>
                </td>
                <td data-testid="attempts">{step.attempts}</td>
                <td>{step.runs}</td>
                <td>{time(step.startedAt)}</td>
                <td>{duration(step.startedAt, step.endedAt)}</td>
                <td>{step.input !== undefined && <pre class="cell">{json(step.input)}</pre>}</td>
                <td data-testid="step-output">
                  {step.output !== undefined && <pre class="cell">{json(step.output)}</pre>}
                </td>
                <td>
                  {history
                    .filter((event) => event.step === step.name && event.type === "AttemptFailed")
                    .map((event) => {
                      const failure = (
                        event.data as { error?: { code: string; message: string } } | undefined
                      )?.error;
                      return (
                        <div key={event.seq}>
                          attempt {event.attempt}: <code>{failure?.code}</code> {failure?.message}
                        </div>
                      );
                    })}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>

      <div class="card">
        <h3>Input</h3>
        <pre>{json(view.input)}</pre>
        {view.output !== undefined && (
          <>
            <h3>Output</h3>
            <pre data-testid="output">{json(view.output)}</pre>
          </>
        )}
        {view.error && (
          <>
            <h3>Error</h3>
            <pre class="error">{json(view.error)}</pre>
          </>
        )}
      </div>

      <div class="card">
        <h3>History</h3>
        <table>
          <thead>
            <tr>
              <th>#</th>
              <th>at</th>
              <th>event</th>
              <th>step</th>
              <th>attempt</th>
              <th>data</th>
            </tr>
          </thead>
          <tbody>
            {history.map((event) => (
              <tr key={event.seq}>
                <td>{event.seq}</td>
                <td>{time(event.at)}</td>
                <td>{event.type}</td>
                <td>{event.step}</td>
                <td>{event.attempt}</td>
                <td>{event.data === undefined ? "" : <code>{JSON.stringify(event.data)}</code>}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}

function Actions({ id, status, onDone }: { id: string; status: string; onDone: () => Promise<void> }) {
  const [signal, setSignal] = useState("");
  const [payload, setPayload] = useState("{}");
  const [message, setMessage] = useState("");
  const act = async (path: string, body?: unknown) => {
    try {
      await api(path, { method: "POST", ...(body === undefined ? {} : { body }) });
      setMessage("");
      await onDone();
    } catch (failure) {
      setMessage((failure as Error).message);
    }
  };
  const running = status === "running" || status === "waiting";
  return (
    <div class="row">
      {running && (
        <>
          <input
            placeholder="signal name"
            value={signal}
            onInput={(event) => setSignal(event.currentTarget.value)}
          />
          <input
            placeholder="payload (JSON)"
            value={payload}
            onInput={(event) => setPayload(event.currentTarget.value)}
          />
          <button
            type="button"
            disabled={signal === ""}
            onClick={() => {
              let body: unknown;
              try {
                body = JSON.parse(payload);
              } catch {
                setMessage("the payload is not JSON");
                return;
              }
              void act(`/v1/executions/${id}/signals/${encodeURIComponent(signal)}`, body);
            }}
          >
            Signal
          </button>
          <button type="button" class="danger" onClick={() => void act(`/v1/executions/${id}/cancel`)}>
            Cancel
          </button>
        </>
      )}
      {status === "failed" && (
        <button type="button" class="primary" onClick={() => void act(`/v1/executions/${id}/retry`)}>
          Retry from the failed step
        </button>
      )}
      {message && <span class="error">{message}</span>}
    </div>
  );
}
