#!/usr/bin/env bash
# Installs what the `peers` benchmark compares Baton with (bench/scenarios/peers.ts), outside
# Baton's own dependencies:
#   - Restate (the restate-server binary and the TypeScript SDK) and BullMQ (with ioredis), from
#     npm, into bench/peers/node_modules, at the versions of bench/peers/package-lock.json;
#   - redis-server, from Debian/Ubuntu's package when it is not installed.
# `npm run bench:peers` runs it first. Safe to run again: it only installs what is missing or stale.
set -euo pipefail

readonly here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log() { printf 'bench/peers/setup: %s\n' "$*" >&2; }

# npm packages. No install scripts: nothing here needs one (the restate-server binary ships as a
# platform package, msgpackr falls back to JavaScript), and @scarf/scarf's is a telemetry ping.
if [[ ! -d "$here/node_modules" || "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ]]; then
  log "installing Restate and BullMQ into bench/peers/node_modules"
  SCARF_ANALYTICS=false npm ci --prefix "$here" --ignore-scripts --no-audit --no-fund >&2
fi

# redis-server, for BullMQ.
find_redis() {
  local dir
  if [[ -n "${REDIS_SERVER_BIN:-}" ]]; then
    command -v "$REDIS_SERVER_BIN" && return 0
    log "REDIS_SERVER_BIN is set to '$REDIS_SERVER_BIN', which is not an executable file."
    return 1
  fi
  if command -v redis-server 2>/dev/null; then return 0; fi
  for dir in /usr/bin /usr/sbin /usr/local/bin; do
    if [[ -x "$dir/redis-server" ]]; then
      echo "$dir/redis-server"
      return 0
    fi
  done
  return 1
}

if ! redis="$(find_redis)"; then
  if [[ -n "${REDIS_SERVER_BIN:-}" ]]; then exit 1; fi
  if ! command -v apt-get >/dev/null 2>&1; then
    log "redis-server is not installed, and this is not a Debian/Ubuntu system, so it cannot be installed here."
    log "Install Redis >= 6.2 (BullMQ's minimum), e.g. \`brew install redis\` on macOS, then put redis-server"
    log "on the PATH or set REDIS_SERVER_BIN=/path/to/redis-server. Only the BullMQ rows need it."
    exit 1
  fi
  sudo_cmd=()
  if [[ "$(id -u)" -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
      sudo_cmd=(sudo -n) # never prompt: fail clearly instead of hanging
    else
      log "redis-server is not installed, and installing it needs root (no sudo found)."
      log "Run as root: apt-get update && apt-get install -y --no-install-recommends redis-server"
      exit 1
    fi
  fi
  log "redis-server not found; installing Debian's redis-server package with apt-get"
  if ! "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update </dev/null >&2 ||
    ! "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server </dev/null >&2; then
    log "apt-get could not install redis-server; install Redis >= 6.2 yourself and set REDIS_SERVER_BIN."
    exit 1
  fi
  # The package starts a system-wide redis on port 6379 (where systemd runs). The benchmark starts
  # its own on a random port with a temporary directory and never uses that one.
  redis="$(find_redis)"
fi

log "$("$redis" --version | head -n 1) ($redis)"
log "restate-server $(node -p 'require(process.argv[1]).version' "$here/node_modules/@restatedev/restate-server/package.json"), bullmq $(node -p 'require(process.argv[1]).version' "$here/node_modules/bullmq/package.json")"
