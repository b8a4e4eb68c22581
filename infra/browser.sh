#!/usr/bin/env bash
# Installs Debian's Chromium for the browser tests, once (the tests drive it with Playwright),
# with a Korean font so that screenshots of the Korean pages can be read (the PDF letters use it
# too), and poppler-utils, whose pdftotext lets the tests read those PDFs back.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && [ -d /usr/share/fonts/truetype/nanum ] \
   && command -v pdftotext >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "browser: Chromium, fonts-nanum or pdftotext is missing; install Debian's 'chromium', 'fonts-nanum' and 'poppler-utils' packages (needs root)" >&2
  exit 1
fi
echo "browser: installing Debian's Chromium, a Korean font and pdftotext for the tests (first run only, about a minute)..."
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-nanum poppler-utils >/dev/null
echo "browser: $(chromium --version)"
