#!/bin/bash
# Kafka Connect (distributed) + the Debezium JDBC sink + the Apicurio converter: the worker config of
# ops/config/services.sh (the process stack's), with the addresses of the container network.
#   connect.sh          write the config and run the worker
#   connect.sh render   write the config only and print its path (tests)
set -euo pipefail
config="$(cd "$(dirname "${BASH_SOURCE[0]}")/../config" && pwd)"   # ops/config, /opt/streams/config in the image
# shellcheck source=ops/config/services.sh
source "$config/services.sh"
: "${CONNECT_BOOTSTRAP:=kafka:9092}"
: "${CONNECT_PORT:=8083}"
: "${CONNECT_ADVERTISED_HOST:=connect}"
: "${CONNECT_REGISTRY_URL:=http://registry:8080/apis/registry/v2}"
: "${CONNECT_HEAP_OPTS:=-Xms256m -Xmx1g}"
: "${CONNECT_CONF:=/tmp}"
props="$CONNECT_CONF/connect-distributed.properties"
connect_worker_properties "$CONNECT_BOOTSTRAP" 0.0.0.0 "$CONNECT_PORT" "$CONNECT_ADVERTISED_HOST" \
  /opt/connect-plugins "$CONNECT_REGISTRY_URL" > "$props"
# The database credentials for connectors that name them (STREAMS_CONNECT_SECRETS=$secrets on
# the workers), when the container is given them; readable by this user only.
secrets="$CONNECT_CONF/connect-secrets.properties"
if [ -n "${CONNECT_DB_PASSWORD:-}" ]; then
  write_connect_secrets "$secrets" "${CONNECT_DB_USER:-streams}" "$CONNECT_DB_PASSWORD"
fi
if [ "${1:-}" = render ]; then echo "$props"; exit 0; fi
host="${CONNECT_BOOTSTRAP%%:*}" port="${CONNECT_BOOTSTRAP##*:}" n=0
until (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; do
  n=$((n + 1)); [ $n -lt 300 ] || { echo "kafka $CONNECT_BOOTSTRAP not reachable" >&2; exit 1; }
  sleep 1
done
# shellcheck disable=SC2086
exec java $CONNECT_HEAP_OPTS -Dlog4j2.configurationFile="$config/log4j2.properties" -Djava.awt.headless=true \
  -XX:+UseG1GC -cp '/opt/kafka/lib/*' org.apache.kafka.connect.cli.ConnectDistributed "$props"
