#!/usr/bin/env bash
# Serves the MongoDB wire protocol with FerretDB on its embedded SQLite backend, data in $NRW_VAR/ferretdb.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
"$root/infra/ferretdb/build.sh"
var="${NRW_VAR:-$root/var}"
mkdir -p "$var/ferretdb"
exec "$root/.cache/bin/ferretdb" --listen-addr "${NRW_FERRETDB_LISTEN:-127.0.0.1:27017}" \
  --sqlite-url "file:$var/ferretdb/" "$@"
