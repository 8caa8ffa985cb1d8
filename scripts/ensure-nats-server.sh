#!/usr/bin/env bash
# Make sure a nats-server (>= 2.9.10, the oldest server Baton supports) is available for the tests
# and for `baton dev`. Honours NATS_SERVER_BIN; otherwise looks on the PATH and, on Debian/Ubuntu,
# installs Debian's `nats-server` package. Safe to run with no stdin (CI).
set -euo pipefail

readonly MIN_VERSION="2.9.10"
readonly INSTALL_DOCS="https://docs.nats.io/running-a-nats-service/introduction/installation"

log() { printf 'ensure-nats-server: %s\n' "$*" >&2; }

# Prints the bare version ("2.9.10") of the server binary given as $1.
server_version() {
  local out
  out="$("$1" --version 2>&1 || true)"
  # "nats-server: v2.9.10" → "2.9.10"
  sed -nE 's/.*v?([0-9]+\.[0-9]+\.[0-9]+).*/\1/p' <<<"$out" | head -n 1
}

# Prints the version and warns (without failing) when it is older than MIN_VERSION.
report() {
  local bin="$1" version
  version="$(server_version "$bin")"
  if [[ -z "$version" ]]; then
    log "could not read the version of $bin (\`$bin --version\` printed nothing usable)"
    return 1
  fi
  echo "nats-server $version ($bin)"
  if [[ "$(printf '%s\n%s\n' "$MIN_VERSION" "$version" | sort -V | head -n 1)" != "$MIN_VERSION" ]]; then
    log "WARNING: nats-server $version is older than $MIN_VERSION, the oldest version Baton supports."
    log "         Install a newer one: $INSTALL_DOCS"
  fi
}

if [[ -n "${NATS_SERVER_BIN:-}" ]]; then
  if [[ -x "$NATS_SERVER_BIN" ]] || command -v "$NATS_SERVER_BIN" >/dev/null 2>&1; then
    report "$(command -v "$NATS_SERVER_BIN")"
    exit 0
  fi
  log "NATS_SERVER_BIN is set to '$NATS_SERVER_BIN', which is not an executable file."
  log "Point it at a nats-server binary, or unset it to use the one on the PATH."
  exit 1
fi

# Prints the path of the nats-server on the PATH or, since Debian's package puts it in /usr/sbin
# (not on every user's PATH), in the usual sbin/bin directories.
find_server() {
  local dir
  if command -v nats-server 2>/dev/null; then return 0; fi
  for dir in /usr/sbin /usr/local/sbin /usr/local/bin; do
    if [[ -x "$dir/nats-server" ]]; then
      echo "$dir/nats-server"
      return 0
    fi
  done
  return 1
}

if server="$(find_server)"; then
  report "$server"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  log "nats-server is not installed, and this is not a Debian/Ubuntu system, so it cannot be installed automatically."
  log "Install nats-server >= $MIN_VERSION: $INSTALL_DOCS"
  log "(for example \`brew install nats-server\` on macOS, or download a release binary),"
  log "then put it on the PATH or set NATS_SERVER_BIN=/path/to/nats-server."
  exit 1
fi

sudo_cmd=()
if [[ "$(id -u)" -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    # -n: never prompt (CI has no stdin); fail clearly instead of hanging.
    sudo_cmd=(sudo -n)
  else
    log "nats-server is not installed, and installing it needs root (no sudo found)."
    log "Run as root: apt-get update && apt-get install -y nats-server"
    log "or install it another way ($INSTALL_DOCS) and set NATS_SERVER_BIN."
    exit 1
  fi
fi

log "nats-server not found; installing Debian's nats-server package with apt-get"
export DEBIAN_FRONTEND=noninteractive
if ! "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update </dev/null >&2 ||
  ! "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nats-server </dev/null >&2; then
  log "apt-get could not install nats-server."
  log "Install nats-server >= $MIN_VERSION yourself ($INSTALL_DOCS) and put it on the PATH or set NATS_SERVER_BIN."
  exit 1
fi

if ! server="$(find_server)"; then
  log "the nats-server package installed, but no nats-server is on the PATH ($PATH)."
  log "Set NATS_SERVER_BIN=/path/to/nats-server."
  exit 1
fi
report "$server"
