#!/usr/bin/env bash
# Runs a command next to a throw-away PostgreSQL cluster (Debian's
# postgresql package) on 127.0.0.1, and removes the cluster afterwards,
# whatever the command did. The command sees
#   KEYGATE_TEST_PG=postgres://keygate@127.0.0.1:PORT/postgres
# (trust authentication, loopback only). initdb and the server refuse to run
# as root: as root they run as the `postgres` user the package creates.
#
#   scripts/with-postgres.sh cargo test -p keygate-cli --test api
set -euo pipefail

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
    echo "with-postgres: no PostgreSQL server (apt install postgresql)" >&2
    exit 3
fi
as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
dir=$(mktemp -d /tmp/keygate-pg.XXXXXX)
chmod 755 "$dir"
if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi
port=${KEYGATE_PG_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
stop() {
    as_pg "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap stop EXIT
as_pg "$bin/initdb" -D "$dir/data" -U keygate -A trust -E UTF8 --no-instructions >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 3; }
# Connections enough for the tests' instances and clients; everything else
# is the package's default (fsync on: the crash tests mean it).
as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=300" start >/dev/null \
    || { cat "$dir/server.log" >&2; exit 3; }
export KEYGATE_TEST_PG="postgres://keygate@127.0.0.1:$port/postgres"
echo "with-postgres: PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port" >&2
"$@"
