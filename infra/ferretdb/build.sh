#!/usr/bin/env bash
# Builds FerretDB v1.24.2 (embedded in our small main module) into .cache/bin/ferretdb, once.
# Go modules and the build cache stay under .cache/go, so a second build takes seconds.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
src="$root/infra/ferretdb"
bin="$root/.cache/bin/ferretdb"
stamp="$root/.cache/bin/.ferretdb-$(cat "$src/go.mod" "$src/go.sum" "$src/main.go" | sha256sum | cut -c1-16)"
if [ -x "$bin" ] && [ -e "$stamp" ]; then exit 0; fi
command -v go >/dev/null || { echo "ferretdb: the Go toolchain is needed to build FerretDB (https://go.dev/doc/install)" >&2; exit 1; }
echo "ferretdb: building FerretDB v1.24.2 with Go into .cache/bin (first run only, 2-4 minutes)..."
export GOPATH="$root/.cache/go" GOMODCACHE="$root/.cache/go/mod" GOCACHE="$root/.cache/go/build" GOFLAGS=-mod=mod
mkdir -p "$root/.cache/bin"
(cd "$src" && go build -trimpath -o "$bin.tmp" .)
mv "$bin.tmp" "$bin"
rm -f "$root"/.cache/bin/.ferretdb-*
touch "$stamp"
echo "ferretdb: built $bin"
