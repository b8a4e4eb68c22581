#!/usr/bin/env bash
# Installs Debian's Chromium for the browser tests, once (the tests drive it with Playwright),
# with a Korean font so that screenshots of the Korean pages can be read.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && [ -d /usr/share/fonts/truetype/nanum ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "browser: Chromium is missing; install Debian's 'chromium' package (needs root)" >&2
  exit 1
fi
echo "browser: installing Debian's Chromium and a Korean font for the browser tests (first run only, about a minute)..."
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-nanum >/dev/null
echo "browser: $(chromium --version)"
