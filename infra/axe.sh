#!/usr/bin/env bash
# Fetches axe-core (the accessibility checker the browser tests inject into every page) from the
# npm registry, once: the pinned release, checked against its published sha512, unpacked to
# .cache/axe/axe-core-<version>/axe.min.js (ignored by git).
set -euo pipefail
VERSION=4.14.1
INTEGRITY="sha512-FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ=="
DIR="$(cd "$(dirname "$0")/.." && pwd)/.cache/axe"
TARGET="$DIR/axe-core-$VERSION/axe.min.js"
[ -s "$TARGET" ] && exit 0
command -v npm >/dev/null || { echo "axe: npm is needed to fetch axe-core $VERSION (Debian's 'npm' package)" >&2; exit 1; }
mkdir -p "$DIR"
cd "$DIR"
echo "axe: fetching axe-core $VERSION from the npm registry..."
npm pack --silent "axe-core@$VERSION" >/dev/null
TARBALL="axe-core-$VERSION.tgz"
GOT="sha512-$(openssl dgst -sha512 -binary "$TARBALL" | base64 -w0)"
if [ "$GOT" != "$INTEGRITY" ]; then
  rm -f "$TARBALL"
  echo "axe: $TARBALL does not match the pinned sha512; not used" >&2
  exit 1
fi
mkdir -p "axe-core-$VERSION"
tar -xzf "$TARBALL" -C "axe-core-$VERSION" --strip-components=1 package/axe.min.js package/LICENSE
rm -f "$TARBALL"
echo "axe: $TARGET"
