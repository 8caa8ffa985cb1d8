#!/usr/bin/env bash
# The one command that sets up and runs Baton's whole test suite on a fresh Debian/Ubuntu machine
# with Node 20: installs the npm dependencies (npm ci), installs nats-server and Chromium (for
# the browser tests) if they are missing, then runs `npm run verify` (format check, lint, typecheck, tests).
# The last line it prints is always the test summary, `N passed, N failed`; when a
# step before the tests fails, that line is `0 passed, 1 failed`. Works with no stdin (CI=true).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

step="start"
summary_file="$(mktemp "${TMPDIR:-/tmp}/baton-test-summary.XXXXXX")"
export BATON_TEST_SUMMARY_FILE="$summary_file"

on_exit() {
  local status=$?
  # scripts/run-tests.mjs writes the summary file once the tests have run; their summary is
  # already the last line printed. Otherwise a step before the tests failed: say which, and
  # print a summary that CI reads as a failure.
  if [[ $status -ne 0 && ! -s "$summary_file" ]]; then
    echo "test.sh: FAILED during: $step (exit code $status). See the output above." >&2
    echo "0 passed, 1 failed"
  fi
  rm -f "$summary_file"
  exit "$status"
}
trap on_exit EXIT

section() {
  step="$1"
  printf '\n==> %s\n' "$1" >&2
}

section "checking Node.js (20.19 or newer)"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "test.sh: Node.js 20 (node and npm) is required: https://nodejs.org/en/download" >&2
  exit 1
fi
node -e '
  const [major, minor] = process.versions.node.split(".").map(Number);
  if (major < 20 || (major === 20 && minor < 19)) {
    console.error(`test.sh: Node.js ${process.versions.node} is too old; Baton needs 20.19 or newer.`);
    process.exit(1);
  }
  console.error(`node ${process.versions.node}`);
'

if [[ -f package-lock.json ]]; then
  section "installing dependencies (npm ci)"
  npm ci --no-audit --no-fund </dev/null
else
  section "installing dependencies (npm install: no package-lock.json)"
  npm install --no-audit --no-fund </dev/null
fi

section "making sure nats-server is installed (scripts/ensure-nats-server.sh)"
bash scripts/ensure-nats-server.sh </dev/null

section "making sure a nats-server 2.10+ is at hand for the cluster tests (scripts/ensure-nats-server-cluster.sh)"
# Debian 12's nats-server (2.9.10) runs one node; the 3-node cluster tests need 2.10 or newer.
# Without one, the cluster tests that kill nodes are skipped (they say so); the rest run.
# In CI (CI=true) that is a failure: the node-killing tests must run there.
if cluster_server="$(bash scripts/ensure-nats-server-cluster.sh </dev/null)"; then
  export NATS_SERVER_CLUSTER_BIN="$cluster_server"
elif [[ "${CI:-}" == "true" ]]; then
  echo "test.sh: no nats-server 2.10+ for the cluster tests (see above); in CI they must run." >&2
  exit 1
else
  echo "test.sh: WARNING: no nats-server 2.10+ for the cluster tests; the node-killing ones will be skipped." >&2
fi

section "making sure Chromium is installed for the browser tests (scripts/ensure-chromium.sh)"
bash scripts/ensure-chromium.sh </dev/null

section "npm run verify: format check, lint, typecheck, tests"
# --silent keeps npm's own notices (and, on npm 10, its "Lifecycle script failed" lines) after
# the test summary out of the output; the tools' own output is unchanged.
npm run --silent verify </dev/null
