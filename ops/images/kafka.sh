#!/bin/bash
# Kafka 4 in KRaft mode, one combined broker+controller: the broker config of ops/config/services.sh
# (the process stack's), with the addresses of the container network.
# Defaults fit docker-compose.yml: containers reach kafka:9092; the host reaches 127.0.0.1:$KAFKA_EXTERNAL_PORT,
# which compose publishes on the container's port 19092. tests/containers.py overrides the listeners.
#   kafka.sh          write the config and run the broker
#   kafka.sh render   write the config only and print its path (tests)
set -euo pipefail
config="$(cd "$(dirname "${BASH_SOURCE[0]}")/../config" && pwd)"   # ops/config, /opt/streams/config in the image
# shellcheck source=ops/config/services.sh
source "$config/services.sh"
: "${KAFKA_EXTERNAL_PORT:=9092}"
: "${KAFKA_CONTROLLER_PORT:=9093}"
: "${KAFKA_LISTENERS:=INTERNAL://0.0.0.0:9092,EXTERNAL://0.0.0.0:19092,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT}"
: "${KAFKA_ADVERTISED_LISTENERS:=INTERNAL://kafka:9092,EXTERNAL://127.0.0.1:$KAFKA_EXTERNAL_PORT}"
: "${KAFKA_INTER_BROKER_LISTENER:=INTERNAL}"
: "${KAFKA_HEAP_OPTS:=-Xms256m -Xmx1g}"
: "${KAFKA_HOME:=/var/lib/kafka}"
data="$KAFKA_HOME/data" props="$KAFKA_HOME/server.properties"
mkdir -p "$data"
kafka_server_properties "$KAFKA_LISTENERS" "$KAFKA_ADVERTISED_LISTENERS" "$KAFKA_INTER_BROKER_LISTENER" \
  "$KAFKA_CONTROLLER_PORT" "$data" > "$props"
if [ "${1:-}" = render ]; then echo "$props"; exit 0; fi
jopts=(-Dlog4j2.configurationFile="$config/log4j2.properties" -Djava.awt.headless=true -XX:+UseG1GC -XX:MaxGCPauseMillis=20)
if [ ! -f "$data/meta.properties" ]; then
  cid="$(java -cp '/opt/kafka/lib/*' "${jopts[@]}" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)"
  java -cp '/opt/kafka/lib/*' "${jopts[@]}" kafka.tools.StorageTool format -t "$cid" -c "$props"
fi
# shellcheck disable=SC2086
exec java $KAFKA_HEAP_OPTS "${jopts[@]}" -cp '/opt/kafka/lib/*' kafka.Kafka "$props"
