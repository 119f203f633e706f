# shellcheck shell=bash
# The configuration of the Kafka broker and the Kafka Connect worker, in one place for the process
# stack (ops/stack.sh) and the container images (ops/images/kafka.sh, ops/images/connect.sh, used by
# docker-compose.yml and tests/containers.py). Sourced; each function prints a properties file and
# takes only what differs between the two: addresses and paths. A setting changes here, for both.

# kafka_server_properties LISTENERS ADVERTISED_LISTENERS INTER_BROKER_LISTENER CONTROLLER_PORT LOG_DIR
#                         [NODE_ID VOTERS REPLICAS]
# KRaft, combined broker+controller nodes. One node by default; a cluster passes each node its id,
# the quorum (`1@host:port,2@host:port,…`) and the replication of every topic: REPLICAS copies,
# a write acknowledged by all (acks=all) once REPLICAS-1 of them have it (at least 1).
kafka_server_properties() {
  local listeners="$1" advertised="$2" inter_broker="$3" controller_port="$4" log_dir="$5"
  local node_id="${6:-1}" voters="${7:-1@127.0.0.1:$4}" replicas="${8:-1}"
  local min_isr=$(( replicas > 1 ? replicas - 1 : 1 ))
  cat <<EOF
process.roles=broker,controller
node.id=$node_id
controller.quorum.voters=$voters
listeners=$listeners
advertised.listeners=$advertised
controller.listener.names=CONTROLLER
inter.broker.listener.name=$inter_broker
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT
log.dirs=$log_dir
num.partitions=1
# topics created without a replication factor (streams asks for the broker's default) get these
default.replication.factor=$replicas
min.insync.replicas=$min_isr
offsets.topic.replication.factor=$replicas
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=$replicas
transaction.state.log.min.isr=$min_isr
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=$replicas
share.coordinator.state.topic.min.isr=$min_isr
# a replica that is not in sync never becomes leader: acknowledged writes are not lost
unclean.leader.election.enable=false
group.initial.rebalance.delay.ms=0
# a topic exists only as streams declares it (partitions, policies): never made by a first produce
auto.create.topics.enable=false
log.retention.hours=168
log.segment.bytes=104857600
EOF
}

# connect_worker_properties BOOTSTRAP LISTEN_HOST PORT ADVERTISED_HOST PLUGIN_PATH REGISTRY_URL [REPLICAS]
# Distributed Connect with the Debezium JDBC sink and the Apicurio Avro converter.
connect_worker_properties() {
  local bootstrap="$1" listen_host="$2" port="$3" advertised_host="$4" plugin_path="$5" registry_url="$6"
  local replicas="${7:-1}"
  cat <<EOF
bootstrap.servers=$bootstrap
group.id=streams-connect
listeners=http://$listen_host:$port
rest.advertised.host.name=$advertised_host
rest.advertised.port=$port
plugin.path=$plugin_path
plugin.discovery=hybrid_warn
config.storage.topic=_connect-configs
offset.storage.topic=_connect-offsets
status.storage.topic=_connect-status
config.storage.replication.factor=$replicas
offset.storage.replication.factor=$replicas
offset.storage.partitions=5
status.storage.replication.factor=$replicas
status.storage.partitions=1
offset.flush.interval.ms=1000
scheduled.rebalance.max.delay.ms=0
# Defaults for connectors that do not set their own converters: string keys, Avro values in
# Confluent wire format (magic 0 + 4-byte id) with ids from the registry's ccompat API (contentIds).
key.converter=org.apache.kafka.connect.storage.StringConverter
value.converter=io.apicurio.registry.utils.converter.AvroConverter
value.converter.apicurio.registry.url=$registry_url
value.converter.apicurio.registry.as-confluent=true
value.converter.apicurio.registry.use-id=contentId
value.converter.apicurio.registry.headers.enabled=false
# Connectors name the database credentials (\${file:<secrets file>:password}) instead of holding
# them (STREAMS_CONNECT_SECRETS names the secrets file; docs/realtime-and-sinks.md).
config.providers=file
config.providers.file.class=org.apache.kafka.common.config.provider.FileConfigProvider
EOF
}

# write_connect_secrets FILE USER PASSWORD
# The database credentials for the Connect worker's FileConfigProvider, readable by this user only
# (a backslash is doubled: the file is read as Java properties).
write_connect_secrets() {
  local user="${2//\\/\\\\}" password="${3//\\/\\\\}"
  (umask 077 && printf 'username=%s\npassword=%s\n' "$user" "$password" > "$1.tmp")
  chmod 600 "$1.tmp" && mv -f "$1.tmp" "$1"
}
