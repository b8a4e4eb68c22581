#!/usr/bin/env bash
# Builds FerretDB v1.24.2 into .cache/bin, once:
#   ferretdb-server  FerretDB's own release command (cmd/ferretdb), the one build that takes the
#                    flags of its authentication (--test-enable-new-auth, --setup-*); the embeddable
#                    package has no option for them. Built from the module the Go proxy serves,
#                    with the version file its release build would generate (the command refuses to
#                    start without one).
#   ferretdb         our main module (main.go): starts ferretdb-server, rebuilds the accounts from
#                    the password files at each start, keeps the _id indexes SQLite lacks.
# Go modules and the build cache stay under .cache/go, so a second build takes seconds.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
src="$root/infra/ferretdb"
bin="$root/.cache/bin/ferretdb"
server="$root/.cache/bin/ferretdb-server"
stamp="$root/.cache/bin/.ferretdb-$(cat "$src/go.mod" "$src/go.sum" "$src/main.go" "$src/build.sh" | sha256sum | cut -c1-16)"
if [ -x "$bin" ] && [ -x "$server" ] && [ -e "$stamp" ]; then exit 0; fi
command -v go >/dev/null || { echo "ferretdb: the Go toolchain is needed to build FerretDB (https://go.dev/doc/install)" >&2; exit 1; }
echo "ferretdb: building FerretDB v1.24.2 with Go into .cache/bin (first run only, 2-4 minutes)..."
export GOPATH="$root/.cache/go" GOMODCACHE="$root/.cache/go/mod" GOCACHE="$root/.cache/go/build" GOFLAGS=-mod=mod
mkdir -p "$root/.cache/bin"
# One build at a time (test runs in parallel each call this script; flock is util-linux's): the
# next finds it done.
if command -v flock >/dev/null; then
  exec 9>"$root/.cache/bin/.ferretdb.lock"
  flock 9
  if [ -x "$bin" ] && [ -x "$server" ] && [ -e "$stamp" ]; then exit 0; fi
fi
(cd "$src" && go build -trimpath -o "$bin.tmp" .)
version=$(cd "$src" && go list -m -f '{{.Version}}' github.com/FerretDB/FerretDB)
module=$(cd "$src" && go mod download -json "github.com/FerretDB/FerretDB@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
work="$root/.cache/ferretdb-src"
rm -rf "$work"
cp -R "$module" "$work"
chmod -R u+w "$work"
echo "$version" > "$work/build/version/version.txt"
(cd "$work" && go build -trimpath -o "$server.tmp" ./cmd/ferretdb)
mv "$server.tmp" "$server"
mv "$bin.tmp" "$bin"
rm -f "$root"/.cache/bin/.ferretdb-*
touch "$stamp"
echo "ferretdb: built $bin and $server"
