#!/bin/bash
# Kafka 4 in KRaft mode, one combined broker+controller, the settings of ops/stack.sh.
# Defaults fit docker-compose.yml: containers reach kafka:9092; the host reaches 127.0.0.1:$KAFKA_EXTERNAL_PORT,
# which compose publishes on the container's port 19092. tests/containers.py overrides the listeners.
set -euo pipefail
: "${KAFKA_EXTERNAL_PORT:=9092}"
: "${KAFKA_CONTROLLER_PORT:=9093}"
: "${KAFKA_LISTENERS:=INTERNAL://0.0.0.0:9092,EXTERNAL://0.0.0.0:19092,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT}"
: "${KAFKA_ADVERTISED_LISTENERS:=INTERNAL://kafka:9092,EXTERNAL://127.0.0.1:$KAFKA_EXTERNAL_PORT}"
: "${KAFKA_INTER_BROKER_LISTENER:=INTERNAL}"
: "${KAFKA_HEAP_OPTS:=-Xms256m -Xmx1g}"
data=/var/lib/kafka/data props=/var/lib/kafka/server.properties
mkdir -p "$data"
cat > "$props" <<EOP
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=$KAFKA_LISTENERS
advertised.listeners=$KAFKA_ADVERTISED_LISTENERS
controller.listener.names=CONTROLLER
inter.broker.listener.name=$KAFKA_INTER_BROKER_LISTENER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT
log.dirs=$data
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# a topic exists only as streams declares it (partitions, policies): never made by a first produce
auto.create.topics.enable=false
log.retention.hours=168
log.segment.bytes=104857600
EOP
jopts=(-Dlog4j2.configurationFile=/opt/kafka/log4j2.properties -Djava.awt.headless=true -XX:+UseG1GC -XX:MaxGCPauseMillis=20)
if [ ! -f "$data/meta.properties" ]; then
  cid="$(java -cp '/opt/kafka/lib/*' "${jopts[@]}" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)"
  java -cp '/opt/kafka/lib/*' "${jopts[@]}" kafka.tools.StorageTool format -t "$cid" -c "$props"
fi
# shellcheck disable=SC2086
exec java $KAFKA_HEAP_OPTS "${jopts[@]}" -cp '/opt/kafka/lib/*' kafka.Kafka "$props"
