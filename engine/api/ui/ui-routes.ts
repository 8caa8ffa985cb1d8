/**
 * The web console at `/ui` (docs/api.md#the-console): a page and its script, served without a
 * token (they hold no data: the console asks for a token itself when the API has some, and keeps
 * it in `sessionStorage`). Everything it shows comes from the API's own routes.
 */
import type { FastifyPluginCallback } from "fastify";
import type { ApiContext } from "../context.ts";
import { ApiError } from "../problems.ts";
import { consoleBundle } from "./bundle.ts";

const escapeAttribute = (text: string) =>
  text.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

function page(traceUrl: string | undefined): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Baton console</title>
<link rel="icon" href="data:,">
<style>${styles}</style>
</head>
<body data-trace-url="${escapeAttribute(traceUrl ?? "")}">
<div id="app">Loading…</div>
<script type="module" src="/ui/app.js"></script>
</body>
</html>`;
}

export function uiRoutes({ uiTraceUrl }: ApiContext): FastifyPluginCallback {
  const html = page(uiTraceUrl);
  return (app, _options, done) => {
    const publicRoute = { config: { isPublic: true }, schema: { hide: true } };
    app.get("/ui", publicRoute, (_request, reply) =>
      reply.type("text/html; charset=utf-8").header("cache-control", "no-cache").send(html),
    );
    app.get("/ui/", publicRoute, (_request, reply) => reply.redirect("/ui"));
    app.get<{ Params: { file: string } }>("/ui/:file", publicRoute, async (request, reply) => {
      const script = (await consoleBundle()).get(request.params.file);
      if (script === undefined)
        throw new ApiError("RouteNotFound", `no file ${request.params.file} in the console`);
      // Chunk names carry a hash of their content; the entry's does not.
      const cache = request.params.file === "app.js" ? "no-cache" : "public, max-age=31536000, immutable";
      return reply.type("text/javascript; charset=utf-8").header("cache-control", cache).send(script);
    });
    done();
  };
}

const styles = `
:root { --fg:#1d2433; --muted:#667085; --line:#e4e7ec; --bg:#f8f9fb; --accent:#2f6fed;
  --ok:#1a9f5b; --bad:#d92d20; --warn:#dc8a00; --wait:#98a2b3; font: 14px/1.45 system-ui, sans-serif; color: var(--fg); }
body { margin: 0; background: var(--bg); }
header { display:flex; gap:1.25rem; align-items:center; padding:.6rem 1.25rem; background:#101828; color:#fff; }
header a { color:#d0d5dd; text-decoration:none; } header a.active, header a:hover { color:#fff; }
header strong { margin-right:1rem; }
main { padding:1rem 1.25rem; max-width: 1200px; }
table { border-collapse: collapse; width:100%; background:#fff; border:1px solid var(--line); }
th, td { text-align:left; padding:.4rem .6rem; border-bottom:1px solid var(--line); vertical-align: top; }
th { font-weight:600; color:var(--muted); background:#fcfcfd; }
a { color: var(--accent); }
.status { display:inline-block; padding:0 .45rem; border-radius:999px; font-size:12px; font-weight:600; background:#eef2f6; }
.status.succeeded { background:#dcfae6; color:#067647; } .status.failed, .status.timed_out { background:#fee4e2; color:#b42318; }
.status.running { background:#d1e9ff; color:#175cd3; } .status.waiting { background:#fef0c7; color:#b54708; }
.status.cancelled { background:#eaecf0; color:#344054; }
.row { display:flex; gap:.75rem; align-items:center; flex-wrap:wrap; margin:.5rem 0; }
.card { background:#fff; border:1px solid var(--line); border-radius:8px; padding: .75rem 1rem; margin: .75rem 0; }
.muted { color: var(--muted); }
pre { background:#f2f4f7; padding:.5rem; overflow:auto; max-height: 18rem; margin:.25rem 0; font-size: 12px; }
pre.cell { max-height: 6rem; max-width: 16rem; margin: 0; }
button { font: inherit; padding:.3rem .7rem; border-radius:6px; border:1px solid #d0d5dd; background:#fff; cursor:pointer; }
button.primary { background: var(--accent); color:#fff; border-color: var(--accent); }
button.danger { color: var(--bad); border-color: #fda29b; }
input, select { font: inherit; padding:.25rem .4rem; border:1px solid #d0d5dd; border-radius:6px; }
.timeline { position: relative; height: 260px; }
progress { width: 16rem; }
.error { color: var(--bad); }
.diagram svg { max-width: 100%; }
`;
