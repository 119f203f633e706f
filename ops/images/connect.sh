#!/bin/bash
# Kafka Connect (distributed) + the Debezium JDBC sink + the Apicurio converter: the worker
# config of ops/stack.sh, with the addresses of the container network.
set -euo pipefail
: "${CONNECT_BOOTSTRAP:=kafka:9092}"
: "${CONNECT_PORT:=8083}"
: "${CONNECT_ADVERTISED_HOST:=connect}"
: "${CONNECT_REGISTRY_URL:=http://registry:8080/apis/registry/v2}"
: "${CONNECT_HEAP_OPTS:=-Xms256m -Xmx1g}"
props=/tmp/connect-distributed.properties
cat > "$props" <<EOP
bootstrap.servers=$CONNECT_BOOTSTRAP
group.id=streams-connect
listeners=http://0.0.0.0:$CONNECT_PORT
rest.advertised.host.name=$CONNECT_ADVERTISED_HOST
rest.advertised.port=$CONNECT_PORT
plugin.path=/opt/connect-plugins
plugin.discovery=hybrid_warn
config.storage.topic=_connect-configs
offset.storage.topic=_connect-offsets
status.storage.topic=_connect-status
config.storage.replication.factor=1
offset.storage.replication.factor=1
offset.storage.partitions=5
status.storage.replication.factor=1
status.storage.partitions=1
offset.flush.interval.ms=1000
scheduled.rebalance.max.delay.ms=0
key.converter=org.apache.kafka.connect.storage.StringConverter
value.converter=io.apicurio.registry.utils.converter.AvroConverter
value.converter.apicurio.registry.url=$CONNECT_REGISTRY_URL
value.converter.apicurio.registry.as-confluent=true
value.converter.apicurio.registry.use-id=contentId
value.converter.apicurio.registry.headers.enabled=false
config.providers=file
config.providers.file.class=org.apache.kafka.common.config.provider.FileConfigProvider
EOP
# The database credentials for connectors that name them (STREAMS_CONNECT_SECRETS=$secrets on
# the workers), when the container is given them; readable by this user only.
secrets=/tmp/connect-secrets.properties
if [ -n "${CONNECT_DB_PASSWORD:-}" ]; then
  (umask 077 && printf 'username=%s\npassword=%s\n' "${CONNECT_DB_USER:-streams}" "${CONNECT_DB_PASSWORD//\\/\\\\}" > "$secrets")
fi
host="${CONNECT_BOOTSTRAP%%:*}" port="${CONNECT_BOOTSTRAP##*:}" n=0
until (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; do
  n=$((n + 1)); [ $n -lt 300 ] || { echo "kafka $CONNECT_BOOTSTRAP not reachable" >&2; exit 1; }
  sleep 1
done
# shellcheck disable=SC2086
exec java $CONNECT_HEAP_OPTS -Dlog4j2.configurationFile=/opt/kafka/log4j2.properties -Djava.awt.headless=true \
  -XX:+UseG1GC -cp '/opt/kafka/lib/*' org.apache.kafka.connect.cli.ConnectDistributed "$props"
