#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests, on 127.0.0.1: Debian's server
# (installed by install-deps.sh), its cluster in DIR, never one already running.
#   test-postgres.sh start DIR   prints the server's URL, postgres://riskstream@127.0.0.1:PORT
#   test-postgres.sh stop DIR
# run-tests.sh starts one for the whole suite; a test run alone starts its own.
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
dir=$2

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
  echo "error: no PostgreSQL server under /usr/lib/postgresql (deploy/dev/install-deps.sh installs Debian's)" >&2
  exit 1
fi

# initdb and postgres refuse to run as root: the cluster belongs to the postgres user then.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case $1 in
  start)
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then chown postgres "$dir"; fi
    # No fsync: a test cluster is thrown away, and the tests measure no durability.
    if ! as_owner "$bindir/initdb" -D "$dir/data" -A trust -U riskstream -E UTF8 --locale=C --no-sync \
      >"$dir/initdb.log" 2>&1; then
      cat "$dir/initdb.log" >&2
      exit 1
    fi
    for _ in 1 2 3; do
      port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
      if as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
        -o "-F -k $dir -h 127.0.0.1 -p $port -c max_connections=300" start >/dev/null; then
        echo "postgres://riskstream@127.0.0.1:$port"
        exit 0
      fi
    done
    cat "$dir/server.log" >&2
    exit 1
    ;;
  stop)
    as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    ;;
  *) usage ;;
esac
