#!/bin/bash
# PostgreSQL 15 from Debian: initdb on first start, role and database $PG_USER/$PG_DB, password
# auth from the network; the server settings of ops/stack.sh.
set -euo pipefail
: "${PG_USER:=streams}" "${PG_PASSWORD:=streams}" "${PG_DB:=streams}" "${PG_PORT:=5432}"
bin=/usr/lib/postgresql/15/bin data=/var/lib/postgresql/data
mkdir -p "$data" /var/run/postgresql
chown -R postgres:postgres "$data" /var/run/postgresql
chmod 700 "$data"
as_pg() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
if [ ! -f "$data/PG_VERSION" ]; then
  as_pg "$bin/initdb" -D "$data" -U postgres --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >/dev/null
  echo "host all all 0.0.0.0/0 scram-sha-256" >> "$data/pg_hba.conf"
  as_pg "$bin/pg_ctl" -D "$data" -o "-c listen_addresses='' -c unix_socket_directories=/var/run/postgresql" -w start >/dev/null
  as_pg "$bin/psql" -X -q -h /var/run/postgresql -U postgres -v ON_ERROR_STOP=1 -d postgres \
    -c "create role \"$PG_USER\" login password '$PG_PASSWORD'" -c "create database \"$PG_DB\" owner \"$PG_USER\""
  as_pg "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups "$bin/postgres" -D "$data" \
  -c listen_addresses='*' -p "$PG_PORT" -c unix_socket_directories=/var/run/postgresql \
  -c max_connections=100 -c fsync=off -c synchronous_commit=off -c full_page_writes=off
