#!/usr/bin/env bash
# Make sure a nats-server 2.10 or newer is at hand for the cluster tests (test/system/cluster.test.ts)
# and prints its path on stdout. Baton runs on one node with 2.9.10 (Debian 12's package, which the
# other tests use), but a cluster needs 2.10: 2.9.10's replicated work queues lose acknowledged
# messages when a stream's leader changes (docs/operations.md, "Running on a cluster").
#
# In order: NATS_SERVER_CLUSTER_BIN if set; the default nats-server if it is 2.10+; one fetched
# before into .cache/nats-server-cluster/; else, on Debian/Ubuntu, Debian 13's (trixie) nats-server
# package fetched with apt-get into a private download directory (apt checks the archive's
# signature; nothing is installed into the system, and the machine's apt sources are untouched),
# its binary unpacked into .cache/nats-server-cluster/. Safe to run with no stdin (CI).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

readonly MIN_VERSION="2.10.0"
readonly CACHE_DIR="$PWD/.cache/nats-server-cluster"
readonly INSTALL_DOCS="https://docs.nats.io/running-a-nats-service/introduction/installation"

log() { printf 'ensure-nats-server-cluster: %s\n' "$*" >&2; }

server_version() {
  # "nats-server: v2.10.27" → "2.10.27"
  "$1" --version 2>&1 | sed -nE 's/.*v([0-9]+\.[0-9]+\.[0-9]+).*/\1/p' | head -n 1
}

# True when the binary $1 runs and is MIN_VERSION or newer.
recent_enough() {
  local version
  [[ -x "$1" ]] || return 1
  version="$(server_version "$1" || true)"
  [[ -n "$version" ]] || return 1
  [[ "$(printf '%s\n%s\n' "$MIN_VERSION" "$version" | sort -V | head -n 1)" == "$MIN_VERSION" ]]
}

found() {
  log "nats-server $(server_version "$1") for the cluster tests: $1"
  echo "$1"
  exit 0
}

if [[ -n "${NATS_SERVER_CLUSTER_BIN:-}" ]]; then
  if recent_enough "$NATS_SERVER_CLUSTER_BIN"; then found "$NATS_SERVER_CLUSTER_BIN"; fi
  log "NATS_SERVER_CLUSTER_BIN is set to '$NATS_SERVER_CLUSTER_BIN', which is not a nats-server $MIN_VERSION or newer."
  exit 1
fi

default="${NATS_SERVER_BIN:-$(command -v nats-server || echo /usr/sbin/nats-server)}"
if recent_enough "$default"; then found "$default"; fi
if recent_enough "$CACHE_DIR/nats-server"; then found "$CACHE_DIR/nats-server"; fi

unavailable() {
  log "$1"
  log "The cluster tests need nats-server $MIN_VERSION or newer ($INSTALL_DOCS):"
  log "install one and set NATS_SERVER_CLUSTER_BIN=/path/to/nats-server."
  exit 1
}

command -v apt-get >/dev/null 2>&1 || unavailable "this is not a Debian/Ubuntu system, so it cannot be fetched automatically."
command -v dpkg-deb >/dev/null 2>&1 || unavailable "dpkg-deb is missing, so Debian's package cannot be unpacked."
readonly KEYRING="/usr/share/keyrings/debian-archive-keyring.gpg"
[[ -r "$KEYRING" ]] ||
  unavailable "Debian's archive keyring ($KEYRING; package debian-archive-keyring) is missing, so Debian's package cannot be verified."

work="$(mktemp -d "${TMPDIR:-/tmp}/baton-nats-cluster.XXXXXX")"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
arch="$(dpkg --print-architecture)"
echo "deb [arch=$arch signed-by=$KEYRING] http://deb.debian.org/debian trixie main" >"$work/sources.list"
apt_options=(
  -o "Dir::Etc::SourceList=$work/sources.list"
  -o "Dir::Etc::SourceParts=/dev/null"
  # The machine's pins (a Debian 12 that pins trixie down) would refuse the download.
  -o "Dir::Etc::Preferences=/dev/null"
  -o "Dir::Etc::PreferencesParts=/dev/null"
  # Offline, say so within a minute rather than after apt's default retries.
  -o "Acquire::Retries=1"
  -o "Acquire::http::Timeout=20"
  -o "Acquire::Languages=none"
  -o "Dir::State::Lists=$work/lists"
  -o "Dir::Cache=$work/cache"
  -o "APT::Get::List-Cleanup=false"
  # The private directories belong to this user, not to apt's sandbox user.
  -o "APT::Sandbox::User=$(id -un)"
  -o "Debug::NoLocking=true"
)
log "fetching Debian 13's nats-server package with apt-get (signature checked by apt) into $CACHE_DIR"
apt-get "${apt_options[@]}" -q update </dev/null >&2 || unavailable "apt-get could not read Debian 13's package index."
(cd "$work" && apt-get "${apt_options[@]}" -q download nats-server </dev/null >&2) ||
  unavailable "apt-get could not download Debian 13's nats-server package."
packages=("$work"/nats-server_*.deb)
[[ -f "${packages[0]}" ]] || unavailable "apt-get downloaded no nats-server package into $work."
dpkg-deb -x "${packages[0]}" "$work/unpacked" || unavailable "dpkg-deb could not unpack ${packages[0]}."
mkdir -p "$CACHE_DIR"
# Into place in one step: a test run and a bench run may fetch at the same time.
install -m 0755 "$work/unpacked/usr/sbin/nats-server" "$CACHE_DIR/nats-server.$$"
mv -f "$CACHE_DIR/nats-server.$$" "$CACHE_DIR/nats-server"
recent_enough "$CACHE_DIR/nats-server" || unavailable "the unpacked $CACHE_DIR/nats-server does not run or is older than $MIN_VERSION."
found "$CACHE_DIR/nats-server"
