#!/usr/bin/env bash
# The one command that sets up and runs Baton on a laptop: installs the npm packages when they are
# missing or out of date, builds the TypeScript into dist/ (npm run build), makes sure
# nats-server is installed (apt-get on Debian/Ubuntu), then runs
# `baton dev` (nats-server as a child process, the engine and the HTTP API on 127.0.0.1:8080, the
# example workers, every workflow of workflows/ submitted). Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "==> installing npm packages (npm ci)"
  npm ci --no-audit --no-fund
fi
# The compiled code (dist/): tsc is incremental, so an unchanged tree takes a few seconds.
echo "==> building (npm run build)"
npm run --silent build
if [ -z "${NATS_URL:-}" ]; then
  bash scripts/ensure-nats-server.sh
fi
exec node bin/baton.mjs dev "$@"
