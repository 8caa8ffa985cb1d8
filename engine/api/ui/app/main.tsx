// The Baton console: a small single-page app on the API's own routes. Preact (3 kB, the React
// model, well kept) renders it; Chart.js draws the timeline; esbuild bundles it when the API
// first serves /ui (engine/api/ui/bundle.ts). Hash routes: #/executions, #/executions/{id},
// #/workflows, #/workflows/{name}, #/workers, #/deliveries.
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { forgetToken, onUnauthorized, saveToken, savedToken } from "./api.ts";
import { ExecutionPage } from "./execution.tsx";
import { ExecutionsPage } from "./executions.tsx";
import { DeliveriesPage, WorkersPage } from "./operations.tsx";
import { WorkflowPage, WorkflowsPage } from "./workflows.tsx";

const currentRoute = () => location.hash.replace(/^#/, "").split("?")[0] || "/executions";

function useRoute(): string {
  const [route, setRoute] = useState(currentRoute());
  useEffect(() => {
    const changed = () => setRoute(currentRoute());
    addEventListener("hashchange", changed);
    return () => removeEventListener("hashchange", changed);
  }, []);
  return route;
}

function TokenPrompt({ onSaved }: { onSaved: () => void }) {
  const [token, setToken] = useState("");
  return (
    <form
      class="card"
      onSubmit={(event) => {
        event.preventDefault();
        saveToken(token.trim());
        onSaved();
      }}
    >
      <p>This API needs a token (one of BATON_API_TOKENS). It is kept in this tab only (sessionStorage).</p>
      <div class="row">
        <input
          type="password"
          aria-label="API token"
          value={token}
          onInput={(event) => setToken(event.currentTarget.value)}
          size={40}
        />
        <button type="submit" class="primary">
          Use this token
        </button>
      </div>
    </form>
  );
}

function Page({ route }: { route: string }) {
  const [, section, id] = route.split("/");
  if (section === "executions" && id) return <ExecutionPage key={id} id={decodeURIComponent(id)} />;
  if (section === "workflows" && id) return <WorkflowPage key={id} name={decodeURIComponent(id)} />;
  if (section === "workflows") return <WorkflowsPage />;
  if (section === "workers") return <WorkersPage />;
  if (section === "deliveries") return <DeliveriesPage />;
  return <ExecutionsPage />;
}

function App() {
  const route = useRoute();
  const [needsToken, setNeedsToken] = useState(false);
  const [generation, setGeneration] = useState(0);
  useEffect(() => onUnauthorized(() => setNeedsToken(true)), []);
  const link = (path: string, label: string) => (
    <a href={`#${path}`} class={route.startsWith(path) ? "active" : ""}>
      {label}
    </a>
  );
  return (
    <>
      <header>
        <strong>Baton</strong>
        {link("/executions", "Executions")}
        {link("/workflows", "Workflows")}
        {link("/workers", "Workers")}
        {link("/deliveries", "Deliveries")}
        {savedToken() && (
          <a
            href="#"
            onClick={(event) => {
              event.preventDefault();
              forgetToken();
              setNeedsToken(true);
            }}
            style={{ marginLeft: "auto" }}
          >
            forget token
          </a>
        )}
      </header>
      <main>
        {needsToken ? (
          <TokenPrompt
            onSaved={() => {
              setNeedsToken(false);
              setGeneration(generation + 1);
            }}
          />
        ) : (
          <Page key={generation} route={route} />
        )}
      </main>
    </>
  );
}

const root = document.getElementById("app")!;
root.textContent = ""; // the page's "Loading…"
render(<App />, root);
