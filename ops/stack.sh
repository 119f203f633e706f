#!/usr/bin/env bash
# Local infrastructure stack as plain processes (no Docker):
#   postgres (Debian) -> kafka (KRaft, Maven Central) -> registry (Apicurio, Maven Central)
#   -> connect (Kafka Connect + Debezium JDBC sink + Apicurio Avro converter, Maven Central)
# Usage: ops/stack.sh up [service…] | down [service…] | status [service…] | logs [service]
#   (no service named = all of them, in order postgres kafka registry connect)
#   optional: prometheus (Debian's, scraping STACK_PROMETHEUS_TARGETS), when named or STACK_PROMETHEUS=1
# See ops/README.md.
set -euo pipefail

STREAMS_STACK_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OPS="$STREAMS_STACK_REPO/ops"
# shellcheck source=ops/stack.env
source "$OPS/stack.env"
export STREAMS_STACK_HOME STREAMS_STACK_DATA
# shellcheck source=ops/artifacts.sh
source "$OPS/artifacts.sh"   # ensure_kafka_artifacts, ensure_connect_plugins, ensure_registry_*
# shellcheck source=ops/config/services.sh
source "$OPS/config/services.sh"   # kafka_server_properties, connect_worker_properties (shared with ops/images)
# shellcheck source=ops/config/security.sh
source "$OPS/config/security.sh"   # STACK_SECURITY=sasl_ssl: certificates, SCRAM users, listener settings

SERVICES=(postgres kafka registry connect)
# started when named (`up prometheus`) or with STACK_PROMETHEUS=1; `down` stops them if running
OPTIONAL_SERVICES=(prometheus)
LOGS="$STREAMS_STACK_DATA/logs"
RUN="$STREAMS_STACK_DATA/run"
CONF="$STREAMS_STACK_DATA/conf"
PG_BIN="${PG_BIN:-}"
log() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- helpers
python_bin() {
  if [ -n "${PYTHON:-}" ]; then echo "$PYTHON"
  elif [ -x "$STREAMS_STACK_REPO/.venv/bin/python" ]; then echo "$STREAMS_STACK_REPO/.venv/bin/python"
  else echo python3; fi
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pid_of() { # prints pid if the pid file names a live process
  local f="$RUN/$1.pid" p
  [ -f "$f" ] || return 1
  p="$(cat "$f" 2>/dev/null || true)"
  [ -n "$p" ] && kill -0 "$p" 2>/dev/null || return 1
  # a zombie (exited, not yet reaped by init) is not alive: a node stopped a moment ago is restarted
  [ "$(cut -d' ' -f3 "/proc/$p/stat" 2>/dev/null)" != Z ] || return 1
  echo "$p"
}

port_of() {
  case "$1" in
    postgres) echo "$PG_PORT" ;; kafka) kafka_ports ;;
    registry) echo "$REGISTRY_PORT" ;; connect) echo "$CONNECT_PORT" ;;
    prometheus) echo "$PROMETHEUS_PORT" ;;
  esac
}

need_java() {
  command -v java >/dev/null 2>&1 || die "java not found on PATH (need Java 17+; apt-get install openjdk-17-jdk-headless)"
  local m; m="$(java_major java)"
  [ "${m:-0}" -ge 17 ] || die "java on PATH is Java ${m:-?}; Kafka 4 needs Java 17+"
}

find_pg_bin() {
  [ -n "$PG_BIN" ] && [ -x "$PG_BIN/postgres" ] && return 0
  local d
  for d in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
    if [ -x "$d/postgres" ]; then PG_BIN="$d"; return 0; fi
  done
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "postgres binaries missing: apt-get install -y postgresql"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null \
      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null; } \
      || die "apt-get install postgresql failed"
    for d in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
      if [ -x "$d/postgres" ]; then PG_BIN="$d"; return 0; fi
    done
  fi
  die "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/postgres); install the Debian 'postgresql' package as root"
}

# Command as the postgres OS user when we are root (initdb/postgres refuse to run as root).
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# Postgres data dir: <data>/postgres, unless we are root and user 'postgres' cannot reach it
# (e.g. a repo under /root): then a per-data-dir folder under /var/tmp.
pg_data_dir() {
  local d="$STREAMS_STACK_DATA/postgres"
  if [ "$(id -u)" = 0 ]; then
    mkdir -p "$STREAMS_STACK_DATA"
    if ! runuser -u postgres -- test -x "$STREAMS_STACK_DATA" 2>/dev/null; then
      d="/var/tmp/streams-stack-pg-$(printf '%s' "$STREAMS_STACK_DATA" | cksum | cut -d' ' -f1)"
    fi
  fi
  echo "$d"
}

# ---------------------------------------------------------------- kafka nodes
# One node (STACK_BROKERS=1, the default) keeps the names it always had: pid/log `kafka`, data
# <data>/kafka/data. In cluster mode node i is `kafka-i`, data <data>/kafka-i/data.
kafka_nodes() { seq 1 "$STACK_BROKERS"; }
kafka_name() { if [ "$STACK_BROKERS" -gt 1 ]; then echo "kafka-$1"; else echo kafka; fi; }
kafka_port() { echo $(( KAFKA_PORT + $1 - 1 )); }
kafka_controller_port() { echo $(( KAFKA_CONTROLLER_PORT + $1 - 1 )); }
kafka_ports() { local i out=(); for i in $(kafka_nodes); do out+=("$(kafka_port "$i")"); done; (IFS=,; echo "${out[*]}"); }
kafka_bootstrap() { local i out=(); for i in $(kafka_nodes); do out+=("127.0.0.1:$(kafka_port "$i")"); done; (IFS=,; echo "${out[*]}"); }
kafka_voters() { local i out=(); for i in $(kafka_nodes); do out+=("$i@127.0.0.1:$(kafka_controller_port "$i")"); done; (IFS=,; echo "${out[*]}"); }
kafka_replicas() { echo $(( STACK_BROKERS < 3 ? STACK_BROKERS : 3 )); }
kafka_alive() { local i; for i in $(kafka_nodes); do pid_of "$(kafka_name "$i")" >/dev/null || return 1; done; }

# ---------------------------------------------------------------- health checks
health_postgres() {
  find_pg_bin >/dev/null 2>&1 || return 1
  "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -d "$PG_DB" -U "$PG_USER" 2>/dev/null
}

health_kafka() { # every node answers, and the metadata names all of them
  local i
  for i in $(kafka_nodes); do port_open "$(kafka_port "$i")" || return 1; done
  local py; py="$(python_bin)"
  if "$py" -c 'import confluent_kafka' 2>/dev/null; then
    local sec=()
    if security_enabled; then sec=("$(security_dir)/ca.pem" admin "$(security_dir)/admin.password"); fi
    "$py" - "$(kafka_bootstrap)" "$STACK_BROKERS" "${sec[@]}" <<'EOF' 2>/dev/null
import sys
from pathlib import Path
from confluent_kafka.admin import AdminClient
conf = {"bootstrap.servers": sys.argv[1]}
if len(sys.argv) > 3:  # STACK_SECURITY=sasl_ssl: CA file, user, password file
    conf.update({"security.protocol": "SASL_SSL", "sasl.mechanisms": "SCRAM-SHA-512",
                 "ssl.ca.location": sys.argv[3], "sasl.username": sys.argv[4],
                 "sasl.password": Path(sys.argv[5]).read_text().strip()})
md = AdminClient(conf).list_topics(timeout=5)
sys.exit(0 if len(md.brokers) >= int(sys.argv[2]) else 1)
EOF
  else
    for i in $(kafka_nodes); do grep -q "Kafka Server started" "$LOGS/$(kafka_name "$i").log" 2>/dev/null || return 1; done
  fi
}

health_registry() {
  # /health/ready answers 503 until the kafkasql storage has replayed its journal: before that
  # the API already answers, with 404 for schemas that exist
  curl -sf -o /dev/null -m 5 "http://127.0.0.1:$REGISTRY_MGMT_PORT/health/ready" \
    && [ "$(curl -s -o /dev/null -w '%{http_code}' -m 5 "http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7/subjects")" = 200 ]
}

health_connect() {
  curl -sf -m 5 "http://127.0.0.1:$CONNECT_PORT/connector-plugins" 2>/dev/null \
    | grep -q 'io.debezium.connector.jdbc.JdbcSinkConnector'
}

health_prometheus() { curl -sf -m 5 -o /dev/null "http://127.0.0.1:$PROMETHEUS_PORT/-/ready"; }

healthy() { "health_$1"; }

wait_healthy() { # $1 service
  local svc="$1" deadline=$(( SECONDS + STACK_START_TIMEOUT ))
  while [ $SECONDS -lt $deadline ]; do
    if healthy "$svc"; then return 0; fi
    if [ "$svc" = kafka ] && ! kafka_alive; then
      log "kafka: a node exited during startup"; break
    elif [ "$svc" != postgres ] && [ "$svc" != kafka ] && ! pid_of "$svc" >/dev/null; then
      log "$svc exited during startup"; break
    fi
    sleep 1
  done
  local name="$svc" i
  if [ "$svc" = kafka ]; then # the log of the first node that is not running (else the last)
    name="$(kafka_name "$STACK_BROKERS")"
    for i in $(kafka_nodes); do pid_of "$(kafka_name "$i")" >/dev/null || { name="$(kafka_name "$i")"; break; }; done
  fi
  log "$svc did not become healthy within ${STACK_START_TIMEOUT}s; last 40 lines of $LOGS/$name.log:"
  tail -n 40 "$LOGS/$name.log" >&2 2>/dev/null || true
  exit 1
}

# Before starting: is the port taken by something that is not our healthy service?
check_port_free() { # $1 service
  local port; port="$(port_of "$1")"
  if port_open "$port"; then
    die "port $port (needed by $1) is in use by another process that is not a healthy $1 of this stack; stop it or set ${2:-the port variable} (see ops/stack.env)"
  fi
}

# Start a detached JVM: $1 service, rest = command. Writes pid file, log file.
spawn() {
  local svc="$1"; shift
  mkdir -p "$LOGS" "$RUN"
  [ -f "$LOGS/$svc.log" ] && mv -f "$LOGS/$svc.log" "$LOGS/$svc.log.1"
  nohup setsid "$@" >"$LOGS/$svc.log" 2>&1 < /dev/null &
  echo $! > "$RUN/$svc.pid"
}

# ---------------------------------------------------------------- postgres
# The superuser's password: generated once per data dir, kept in a file only its owner reads.
pg_superuser_password() {
  mkdir -p "$STREAMS_STACK_DATA"
  security_secret "$STREAMS_STACK_DATA/postgres.superuser" && cat "$STREAMS_STACK_DATA/postgres.superuser"
}

# The application role's (PG_USER) password: PG_PASSWORD when it is set (`prepare connect` for
# another stack, e.g. compose's), else generated once per data dir into <data>/postgres.password
# (mode 600): no fixed password. Connect reads it from its secrets file, tests from this file.
pg_password_file() { echo "$STREAMS_STACK_DATA/postgres.password"; }
pg_app_password() {
  if [ -n "${PG_PASSWORD:-}" ]; then printf '%s' "$PG_PASSWORD"; return 0; fi
  mkdir -p "$STREAMS_STACK_DATA"
  security_secret "$(pg_password_file)" && cat "$(pg_password_file)"
}

# psql as the superuser on this stack's server; the password through the environment, not argv.
pg_psql() {
  PGPASSWORD="$(pg_superuser_password)" "$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 "$@"
}

# The application role and database (idempotent). The role's password is set on every `up`: a data
# dir made when the stack had a fixed password takes the generated one (the password reaches psql
# through stdin, which other users cannot read, rather than argv, which `ps` shows to everyone).
pg_sync_role() {
  local verb=create
  [ "$(pg_psql -d postgres -tAc "select 1 from pg_roles where rolname='$PG_USER'")" != 1 ] || verb=alter
  printf "set password_encryption = 'scram-sha-256'; %s role \"%s\" login password %s;\n" \
    "$verb" "$PG_USER" "$(sql_literal "$(pg_app_password)")" | pg_psql -d postgres
  if [ "$(pg_psql -d postgres -tAc "select 1 from pg_database where datname='$PG_DB'")" != 1 ]; then
    pg_psql -d postgres -c "create database \"$PG_DB\" owner \"$PG_USER\""
  fi
}

sql_literal() { printf "'%s'" "${1//\'/\'\'}"; }

# Data dirs made before password authentication trusted every local connection: give the
# superuser its password and switch pg_hba.conf to scram-sha-256 (while trust still lets us in).
pg_require_passwords() { # $1 pgdata, $2… psql command
  local pgdata="$1"; shift
  as_pg grep -Eq '^[^#]*[[:space:]]trust[[:space:]]*$' "$pgdata/pg_hba.conf" || return 0
  log "postgres: switching $pgdata from trust to scram-sha-256 authentication"
  printf "set password_encryption = 'scram-sha-256'; alter role postgres password %s;\n" \
    "$(sql_literal "$(pg_superuser_password)")" | "$@" -d postgres
  as_pg sed -Ei 's/^([^#]*[[:space:]])trust[[:space:]]*$/\1scram-sha-256/' "$pgdata/pg_hba.conf"
  as_pg "$PG_BIN/pg_ctl" -D "$pgdata" reload >/dev/null
}

start_postgres() {
  find_pg_bin
  local pgdata; pgdata="$(pg_data_dir)"
  mkdir -p "$LOGS" "$RUN"
  if [ ! -f "$pgdata/PG_VERSION" ]; then
    log "initdb $pgdata"
    mkdir -p "$pgdata"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$pgdata"
    chmod 700 "$pgdata"
    # password authentication from the start (scram-sha-256): the superuser's password goes to
    # initdb through a file only the postgres user can read, never through a command line
    local pwfile; pwfile="$(as_pg mktemp)"
    pg_superuser_password | as_pg tee "$pwfile" >/dev/null
    as_pg "$PG_BIN/initdb" -D "$pgdata" -U postgres --auth=scram-sha-256 --pwfile="$pwfile" -E UTF8 --locale=C.UTF-8 >"$LOGS/postgres-initdb.log" 2>&1 \
      || { rm -f "$pwfile"; tail -n 40 "$LOGS/postgres-initdb.log" >&2; die "initdb failed"; }
    rm -f "$pwfile"
  fi
  touch "$LOGS/postgres.log"
  [ "$(id -u)" = 0 ] && chown postgres "$LOGS/postgres.log"
  echo "$pgdata" > "$RUN/postgres.datadir"
  as_pg "$PG_BIN/pg_ctl" -D "$pgdata" -l "$LOGS/postgres.log" -w -t "$STACK_START_TIMEOUT" \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -c unix_socket_directories='' -c max_connections=100 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    start >/dev/null || true
  wait_healthy postgres
  head -1 "$pgdata/postmaster.pid" > "$RUN/postgres.pid" 2>/dev/null || true
  pg_require_passwords "$pgdata" pg_psql
  pg_sync_role
}

# ---------------------------------------------------------------- kafka
write_log4j2() { # $1 file
  cp -f "$OPS/config/log4j2.properties" "$1"
}

# The config of node $1 (ops/config/services.sh, as in the kafka image); prints its path.
write_kafka_conf() {
  local i="$1" name port cport
  name="$(kafka_name "$i")"; port="$(kafka_port "$i")"; cport="$(kafka_controller_port "$i")"
  mkdir -p "$CONF"
  write_log4j2 "$CONF/log4j2.properties"
  ( umask 077  # with STACK_SECURITY=sasl_ssl it holds the keystore's and admin's passwords
    kafka_server_properties "PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport" \
      "PLAINTEXT://127.0.0.1:$port" PLAINTEXT "$cport" "$STREAMS_STACK_DATA/$name/data" \
      "$i" "$(kafka_voters)" "$(kafka_replicas)" > "$CONF/$name-server.properties"
    if security_enabled; then kafka_security_properties "$port" "$cport" >> "$CONF/$name-server.properties"; fi )
  echo "$CONF/$name-server.properties"
}

# Start the nodes that are not running (a cluster's nodes share one cluster id, made once).
start_kafka() {
  need_java
  ensure_kafka_artifacts
  local jopts=(-Dstreams.stack="$STREAMS_STACK_DATA" -Dlog4j2.configurationFile="$CONF/log4j2.properties"
               -Djava.awt.headless=true -XX:+UseG1GC -XX:MaxGCPauseMillis=20)
  local idfile="$STREAMS_STACK_DATA/kafka.cluster-id" i name props port cport scram=()
  local modefile="$STREAMS_STACK_DATA/kafka.security"
  if [ -s "$modefile" ] && [ "$(cat "$modefile")" != "${STACK_SECURITY:-plaintext}" ]; then
    die "kafka in $STREAMS_STACK_DATA was made with STACK_SECURITY=$(cat "$modefile"), not ${STACK_SECURITY:-plaintext}: use another STREAMS_STACK_DATA"
  fi
  if security_enabled; then security_init; mapfile -t scram < <(security_scram_args); fi
  for i in $(kafka_nodes); do
    name="$(kafka_name "$i")"; port="$(kafka_port "$i")"; cport="$(kafka_controller_port "$i")"
    pid_of "$name" >/dev/null && continue
    port_open "$port" && die "port $port (needed by $name) is in use by another process; set KAFKA_PORT"
    port_open "$cport" && die "port $cport (controller of $name) is in use by another process; set KAFKA_CONTROLLER_PORT"
    mkdir -p "$STREAMS_STACK_DATA/$name"
    chmod 700 "$STREAMS_STACK_DATA/$name"   # the event log: readable by its owner only
    props="$(write_kafka_conf "$i")"
    if [ ! -f "$STREAMS_STACK_DATA/$name/data/meta.properties" ]; then
      log "formatting KRaft storage in $STREAMS_STACK_DATA/$name/data"
      [ -s "$idfile" ] || java -cp "$KAFKA_LIB/*" "${jopts[@]}" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1 > "$idfile"
      java -cp "$KAFKA_LIB/*" "${jopts[@]}" kafka.tools.StorageTool format -t "$(cat "$idfile")" -c "$props" "${scram[@]}" \
        > "$LOGS/$name-format.log" 2>&1 || { tail -n 40 "$LOGS/$name-format.log" >&2; die "kafka storage format failed"; }
      echo "${STACK_SECURITY:-plaintext}" > "$modefile"
    fi
    # shellcheck disable=SC2086
    spawn "$name" java $KAFKA_HEAP_OPTS "${jopts[@]}" -cp "$KAFKA_LIB/*" kafka.Kafka "$props"
  done
  wait_healthy kafka
}

# ---------------------------------------------------------------- registry
start_registry() {
  ensure_registry_java
  log "registry: Java $(java_major "$REGISTRY_JAVA") at $REGISTRY_JAVA"
  ensure_registry_artifacts
  mkdir -p "$STREAMS_STACK_DATA/registry/config" "$RUN"
  echo "$REGISTRY_JAVA" > "$RUN/registry.java"
  # Quarkus reads ./config/application.properties (the registry runs in its data dir): the
  # kafkasql storage's Kafka settings, with a password, stay out of argv (mode 600)
  (umask 077; if security_enabled; then security_init; java_client_security_properties registry apicurio.kafka.common.; fi \
     > "$STREAMS_STACK_DATA/registry/config/application.properties")
  # kafkasql storage: the registry's journal lives in our Kafka (topic kafkasql-journal), so
  # schemas and their ids survive restarts of the registry.
  # ccompat: legacy-id-mode=false => ids returned by /apis/ccompat/v7 are contentIds, which the
  # Connect converter (apicurio.registry.use-id=contentId) resolves.
  # Deletion off, and no configuration change at run time: nobody can remove over the registry's
  # own API the schema of records still in the log (its ccompat API ignores this: docs/security.md).
  # shellcheck disable=SC2086
  (cd "$STREAMS_STACK_DATA/registry" && spawn registry "$REGISTRY_JAVA" $REGISTRY_HEAP_OPTS -Dstreams.stack="$STREAMS_STACK_DATA" \
    -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$REGISTRY_PORT" \
    -Dquarkus.management.host=127.0.0.1 -Dquarkus.management.port="$REGISTRY_MGMT_PORT" \
    -Dapicurio.storage.kind=kafkasql \
    -Dapicurio.kafkasql.bootstrap.servers="$(kafka_bootstrap)" \
    -Dapicurio.kafkasql.topic=kafkasql-journal \
    -Dapicurio.kafkasql.snapshots.topic=kafkasql-snapshots \
    -Dapicurio.storage.snapshot.location="$STREAMS_STACK_DATA/registry" \
    -Dapicurio.ccompat.legacy-id-mode.enabled=false \
    -Dapicurio.config.dynamic.allow-all=false \
    -Dapicurio.rest.deletion.artifact.enabled=false \
    -Dapicurio.rest.deletion.artifact-version.enabled=false \
    -Dapicurio.rest.deletion.group.enabled=false \
    -Dquarkus.log.console.format="%d{HH:mm:ss} %-5p [%c{2.}] %s%e%n" \
    -jar "$REGISTRY_HOME/quarkus-run.jar")
  wait_healthy registry
}

# ---------------------------------------------------------------- prometheus (optional)
# Debian's Prometheus scraping the workers of STACK_PROMETHEUS_TARGETS with the project's rules and
# console page (ops/prometheus/local.sh; the bearer token from STREAMS_AUTH_TOKEN, if set).
start_prometheus() {
  command -v prometheus >/dev/null \
    || die "prometheus: not installed (Debian's package 'prometheus'; bash ops/prereqs.sh test installs it)"
  # shellcheck disable=SC2086
  spawn prometheus env PROMETHEUS_DIR="$STREAMS_STACK_DATA/prometheus" PROMETHEUS_PORT="$PROMETHEUS_PORT" \
    bash "$OPS/prometheus/local.sh" $STACK_PROMETHEUS_TARGETS
  wait_healthy prometheus
}

# ---------------------------------------------------------------- connect
start_connect() {
  need_java
  ensure_kafka_artifacts
  ensure_connect_plugins
  write_connect_conf
  local props="$CONF/connect-distributed.properties"
  # shellcheck disable=SC2086
  spawn connect java $CONNECT_HEAP_OPTS -Dstreams.stack="$STREAMS_STACK_DATA" \
    -Dlog4j2.configurationFile="$CONF/log4j2.properties" -Djava.awt.headless=true -XX:+UseG1GC \
    -cp "$KAFKA_LIB/*" org.apache.kafka.connect.cli.ConnectDistributed "$props"
  wait_healthy connect
}

# The Connect worker's config (also written by `prepare connect`, for tests that run a Connect
# worker of their own against another stack, e.g. the compose stack).
write_connect_conf() {
  mkdir -p "$CONF"
  write_log4j2 "$CONF/log4j2.properties"
  ( umask 077  # with STACK_SECURITY=sasl_ssl it holds Connect's Kafka password
    connect_worker_properties "$(kafka_bootstrap)" 127.0.0.1 "$CONNECT_PORT" 127.0.0.1 "$PLUGINS" \
      "http://127.0.0.1:$REGISTRY_PORT/apis/registry/v2" "$(kafka_replicas)" > "$CONF/connect-distributed.properties"
    if security_enabled; then # the worker's own clients, and those it makes for connectors
      security_init
      for prefix in "" producer. consumer. admin.; do java_client_security_properties connect "$prefix"; done \
        >> "$CONF/connect-distributed.properties"
    fi )
  # the connectors name this file: STREAMS_CONNECT_SECRETS=$CONF/connect-secrets.properties
  write_connect_secrets "$CONF/connect-secrets.properties" "$PG_USER" "$(pg_app_password)"
}

# ---------------------------------------------------------------- commands
check_services() { # in the main shell, so that `die` ends the script
  local want all=" ${SERVICES[*]} ${OPTIONAL_SERVICES[*]} "
  for want in "$@"; do
    [[ "$all" == *" $want "* ]] || die "unknown service '$want' (services: ${SERVICES[*]}; optional: ${OPTIONAL_SERVICES[*]})"
  done
}

selected() { # services named on the command line (in stack order), or all of them
  local svc want
  if [ $# -eq 0 ]; then
    printf '%s\n' "${SERVICES[@]}"
    if [ "${STACK_PROMETHEUS:-0}" = 1 ]; then echo prometheus; fi
    return 0
  fi
  for svc in "${SERVICES[@]}" "${OPTIONAL_SERVICES[@]}"; do
    for want in "$@"; do [ "$svc" = "$want" ] && echo "$svc"; done
  done
}

cmd_up() {
  local t0=$SECONDS svc
  mkdir -p "$STREAMS_STACK_HOME" "$STREAMS_STACK_DATA" "$LOGS" "$RUN" "$CONF"
  need_java
  for svc in $(selected "$@"); do
    if healthy "$svc"; then
      log "$svc: already healthy on port $(port_of "$svc")"
      # the role's password follows the generated file (a data dir made with a fixed one)
      if [ "$svc" = postgres ]; then find_pg_bin; pg_sync_role; fi
      # tests read this stack's Connect config (`prepare connect` may have written another's)
      [ "$svc" != connect ] || write_connect_conf
      continue
    fi
    if [ "$svc" = kafka ] && [ "$STACK_BROKERS" -gt 1 ]; then
      # a cluster: start the nodes that are down (e.g. one a chaos scenario killed)
      log "kafka: starting the nodes of $STACK_BROKERS that are not running"
      start_kafka
      log "kafka: healthy (ports $(kafka_ports))"
      continue
    fi
    if [ "$svc" != postgres ] && pid_of "$svc" >/dev/null; then
      # our own process, still starting (e.g. a concurrent `up`): give it the start timeout
      log "$svc: process of this stack is running but not healthy yet; waiting"
      wait_healthy "$svc"
      log "$svc: healthy (port $(port_of "$svc"))"
      continue
    fi
    case "$svc" in
      postgres) check_port_free postgres PG_PORT ;;
      kafka) ;;  # start_kafka checks each node's ports
      registry) check_port_free registry REGISTRY_PORT
                port_open "$REGISTRY_MGMT_PORT" && die "port $REGISTRY_MGMT_PORT (registry management/health interface) is in use by another process; set REGISTRY_MGMT_PORT" ;;
      connect) check_port_free connect CONNECT_PORT ;;
      prometheus) check_port_free prometheus PROMETHEUS_PORT ;;
    esac
    local t1=$SECONDS
    log "$svc: starting"
    "start_$svc"
    log "$svc: healthy (port $(port_of "$svc"), $(( SECONDS - t1 ))s)"
  done
  log "stack up in $(( SECONDS - t0 ))s"
  print_endpoints
}

print_endpoints() {
  cat <<EOF
bootstrap=$(kafka_bootstrap)
registry_url=http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7
connect_url=http://127.0.0.1:$CONNECT_PORT
pg_dsn=postgresql://$PG_USER@127.0.0.1:$PG_PORT/$PG_DB
EOF
  # the password's file, never the password (PGPASSWORD="$(cat <file>)" for psql)
  if [ -n "${PG_PASSWORD:-}" ]; then echo "pg_password=(PG_PASSWORD)"; else echo "pg_password_file=$(pg_password_file)"; fi
  if security_enabled; then security_client_env admin; fi
}

stop_one() { # $1 service (not postgres)
  local svc="$1" p
  p="$(pid_of "$svc" || true)"
  if [ -n "$p" ]; then
    log "$svc: stopping (pid $p)"
    kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$p" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$p" 2>/dev/null; then
      log "$svc: still running after 30s, SIGKILL"
      kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p" 2>/dev/null || true
    fi
  fi
  rm -f "$RUN/$svc.pid"
}

# All nodes are asked at once: a node stopped last, alone, has no quorum to shut down cleanly with.
stop_kafka() {
  local i p
  for i in $(kafka_nodes); do
    p="$(pid_of "$(kafka_name "$i")" || true)"
    [ -z "$p" ] || kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null || true
  done
  for i in $(kafka_nodes); do stop_one "$(kafka_name "$i")"; done
}

stop_postgres() {
  local pgdata
  if [ -f "$RUN/postgres.datadir" ]; then pgdata="$(cat "$RUN/postgres.datadir")"; else pgdata="$(pg_data_dir)"; fi
  if [ -f "$pgdata/postmaster.pid" ]; then
    find_pg_bin
    log "postgres: stopping"
    as_pg "$PG_BIN/pg_ctl" -D "$pgdata" -m fast -w -t 60 stop >/dev/null 2>&1 || {
      local p; p="$(head -1 "$pgdata/postmaster.pid" 2>/dev/null || true)"
      [ -n "$p" ] && kill -KILL "$p" 2>/dev/null || true
    }
  fi
  rm -f "$RUN/postgres.pid"
}

cmd_down() {
  local svc left
  if [ $# -gt 0 ]; then # only the named services, e.g. for outage tests
    for svc in $(selected "$@" | tac); do
      case "$svc" in postgres) stop_postgres ;; kafka) stop_kafka ;; *) stop_one "$svc" ;; esac
    done
    return
  fi
  for svc in prometheus connect registry; do stop_one "$svc"; done
  stop_kafka
  stop_postgres
  # stragglers: any JVM started with -Dstreams.stack=<this data dir>
  left="$(pgrep -f -- "-Dstreams.stack=$STREAMS_STACK_DATA( |$)" || true)"
  if [ -n "$left" ]; then
    log "killing leftover processes: $left"
    # shellcheck disable=SC2086
    kill -KILL $left 2>/dev/null || true
  fi
  log "stack down"
}

cmd_status() {
  local svc rc=0
  for svc in $(selected "$@"); do
    if healthy "$svc"; then
      printf '%-9s healthy  port %s\n' "$svc" "$(port_of "$svc")"
    else
      printf '%-9s down     port %s\n' "$svc" "$(port_of "$svc")"; rc=1
    fi
  done
  return $rc
}

cmd_logs() {
  local svc="${1:-}" n="${LINES_N:-100}"
  if [ -n "$svc" ]; then
    [ -f "$LOGS/$svc.log" ] || die "no log for '$svc' in $LOGS (services: ${SERVICES[*]})"
    tail -n "$n" "$LOGS/$svc.log"
  else
    for svc in "${SERVICES[@]}"; do
      [ -f "$LOGS/$svc.log" ] || continue
      echo "==> $LOGS/$svc.log <=="; tail -n 20 "$LOGS/$svc.log"; echo
    done
  fi
}

case "${1:-}" in
  up) shift; check_services "$@"; cmd_up "$@" ;;
  down) shift; check_services "$@"; cmd_down "$@" ;;
  status) shift; check_services "$@"; cmd_status "$@" ;;
  logs) shift; cmd_logs "${1:-}" ;;
  env) print_endpoints ;;
  prepare) # resolve a service's artifacts and write its config without starting it (connect only)
    shift; [ "${1:-}" = connect ] || die "usage: $0 prepare connect"
    ensure_kafka_artifacts; ensure_connect_plugins; write_connect_conf
    log "prepared connect: $CONF/connect-distributed.properties (registry port $REGISTRY_PORT)" ;;
  render) # write a service's config only (no artifacts, nothing started) and print its path
    shift
    case "${1:-}" in
      kafka) if security_enabled; then security_init; fi
             for i in $(kafka_nodes); do write_kafka_conf "$i"; done ;;
      connect) write_connect_conf; echo "$CONF/connect-distributed.properties" ;;
      *) die "usage: $0 render kafka|connect" ;;
    esac ;;
  *) echo "usage: $0 up [service…] | down [service…] | status [service…] | logs [service] | env | prepare connect | render kafka|connect" >&2; exit 2 ;;
esac
