#!/usr/bin/env bash
# Make sure a headless Chromium is available for the browser system tests (test/system/browser-*.ts),
# which drive it with playwright-core at /usr/bin/chromium (or CHROMIUM_BIN). On Debian/Ubuntu,
# installs Debian's `chromium` package when it is missing. Safe to run with no stdin (CI).
set -euo pipefail

log() { printf 'ensure-chromium: %s\n' "$*" >&2; }

readonly bin="${CHROMIUM_BIN:-/usr/bin/chromium}"

if [[ -x "$bin" ]]; then
  echo "$("$bin" --version 2>/dev/null || echo chromium) ($bin)"
  exit 0
fi
if [[ -n "${CHROMIUM_BIN:-}" ]]; then
  log "CHROMIUM_BIN is set to '$CHROMIUM_BIN', which is not an executable file."
  exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
  log "Chromium is not at $bin, and this is not a Debian/Ubuntu system, so it cannot be installed automatically."
  log "Install Chromium (or Chrome) and set CHROMIUM_BIN=/path/to/chromium."
  exit 1
fi

sudo_cmd=()
if [[ "$(id -u)" -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo_cmd=(sudo -n)
  else
    log "Chromium is not installed, and installing it needs root (no sudo found)."
    log "Run as root: apt-get update && apt-get install -y --no-install-recommends chromium"
    exit 1
  fi
fi

log "Chromium not found; installing Debian's chromium package with apt-get"
if ! "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update </dev/null >&2 ||
  ! "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium </dev/null >&2; then
  log "apt-get could not install chromium. Install Chromium yourself and set CHROMIUM_BIN=/path/to/chromium."
  exit 1
fi
if [[ ! -x "$bin" ]]; then
  log "the chromium package installed, but $bin is not there. Set CHROMIUM_BIN=/path/to/chromium."
  exit 1
fi
echo "$("$bin" --version 2>/dev/null || echo chromium) ($bin)"
