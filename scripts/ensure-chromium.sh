#!/usr/bin/env bash
# Installs Debian's chromium and chromium-driver when either is missing, for the dashboard's
# browser test (tests/browser). Idempotent and quiet: prints one line when it installs,
# nothing when both are already there. Needs root (CI and the project's machines are root).
set -euo pipefail

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi

echo "== installing chromium and chromium-driver (browser test)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null

if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  echo "chromium or chromedriver still missing after apt-get install" >&2
  exit 1
fi
