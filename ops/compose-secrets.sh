#!/usr/bin/env bash
# The compose stack's secrets, generated once: `.env` beside docker-compose.yml (mode 600), which
# docker compose and podman-compose read for the file's ${...}:
#   STREAMS_AUTH_TOKEN  the workers' bearer token (Prometheus scrapes with it too)
#   STREAMS_SECRET      the deployment's secret (forwarded requests, resume tokens, worker URLs)
#   PG_PASSWORD         PostgreSQL's password (the workers and Connect's FileConfigProvider get it)
# A value already in the file is kept; one set in the environment is taken instead of a new one.
# Prints the file's path. `bash ops/containers.sh up` runs it first.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FILE="${COMPOSE_SECRETS_FILE:-$ROOT/.env}"
umask 077
touch "$FILE"
chmod 600 "$FILE"
random_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }
keep_or_make() { # NAME BYTES
  grep -q "^$1=" "$FILE" && return 0
  printf '%s=%s\n' "$1" "${!1:-$(random_hex "$2")}" >> "$FILE"
}
keep_or_make STREAMS_AUTH_TOKEN 16
keep_or_make STREAMS_SECRET 32
keep_or_make PG_PASSWORD 16
echo "$FILE"
