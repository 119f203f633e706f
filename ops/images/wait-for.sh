#!/bin/bash
# wait-for [tcp:HOST:PORT | http://URL]... [--timeout S] -- COMMAND...
# Waits until every TCP port accepts and every URL answers 2xx, then runs COMMAND. Services start
# in any order this way, also where `depends_on: condition` is not enforced (podman-compose with
# Podman < 4.6 ignores it).
set -euo pipefail
timeout=300 targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --timeout) timeout="$2"; shift 2 ;;
    --) shift; break ;;
    *) targets+=("$1"); shift ;;
  esac
done
deadline=$(( SECONDS + timeout ))
for t in "${targets[@]}"; do
  until case "$t" in
          tcp:*) IFS=: read -r _ host port <<< "$t"; (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null ;;
          http*) curl -sf -o /dev/null -m 5 "$t" ;;
        esac; do
    [ $SECONDS -lt $deadline ] || { echo "wait-for: $t not ready after ${timeout}s" >&2; exit 1; }
    sleep 1
  done
  echo "wait-for: $t ready" >&2
done
[ $# -eq 0 ] || exec "$@"
