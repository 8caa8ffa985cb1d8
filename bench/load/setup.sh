#!/usr/bin/env bash
# Installs the HTTP load generator of the `starts` benchmark (bench/scenarios/starts.ts), outside
# Baton's own dependencies: autocannon from npm into bench/load/node_modules, at the versions of
# bench/load/package-lock.json. `npm run bench` runs it first. Safe to run again: it only installs
# when bench/load/node_modules is missing or older than the lockfile.
set -euo pipefail

readonly here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# No install scripts: none of autocannon's packages needs one.
if [[ ! -d "$here/node_modules" || "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ]]; then
  printf 'bench/load/setup: installing autocannon into bench/load/node_modules\n' >&2
  npm ci --prefix "$here" --ignore-scripts --no-audit --no-fund >&2
fi
