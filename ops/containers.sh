#!/usr/bin/env bash
# The container stack (docker-compose.yml, images from ops/images/Containerfile), run with Podman.
#
#   bash ops/containers.sh base          debian:bookworm-slim, bootstrapped from Debian's archive when absent
#   bash ops/containers.sh build         base + every image of docker-compose.yml (timed)
#   bash ops/containers.sh up            build, then start the compose stack; waits until it serves
#                                        (its secrets: .env, made once by ops/compose-secrets.sh)
#   bash ops/containers.sh down          stop it, remove its containers, network and volumes; check none is left
#   bash ops/containers.sh socket-start  Podman's Docker-compatible API for testcontainers (prints DOCKER_HOST)
#   bash ops/containers.sh socket-stop
#   bash ops/containers.sh compose-test  up, integration tests against it, down (make compose-test)
#   bash ops/containers.sh tc-test       a subset of the integration tests through testcontainers
#
# CONTAINERS_CONF points Podman at ops/containers/containers.conf (runc, cgroupfs, lower ulimits),
# unless it is set already. COMPOSE picks the compose implementation (default: `docker compose` when
# a Docker engine answers, else podman-compose from .venv). Ports: see docker-compose.yml.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$ROOT/ops/containers/containers.conf}"
export COMPOSE_KAFKA_PORT="${COMPOSE_KAFKA_PORT:-29092}" COMPOSE_REGISTRY_PORT="${COMPOSE_REGISTRY_PORT:-28081}"
export COMPOSE_CONNECT_PORT="${COMPOSE_CONNECT_PORT:-28083}" COMPOSE_PG_PORT="${COMPOSE_PG_PORT:-25432}"
export COMPOSE_WORKER1_PORT="${COMPOSE_WORKER1_PORT:-26066}" COMPOSE_WORKER2_PORT="${COMPOSE_WORKER2_PORT:-26067}"
export COMPOSE_PROMETHEUS_PORT="${COMPOSE_PROMETHEUS_PORT:-29090}"
BASE=docker.io/library/debian:bookworm-slim
PROJECT=streams
SOCKET="${STREAMS_PODMAN_SOCKET:-/run/streams-podman/podman.sock}"
BIN="$ROOT/.venv/bin"
START_TIMEOUT="${COMPOSE_START_TIMEOUT:-600}"
# one build / one container operation at a time (podman-compose builds every service at once
# otherwise: on 2 cores that is slower, and the shared stages are built several times)
export COMPOSE_PARALLEL_LIMIT="${COMPOSE_PARALLEL_LIMIT:-1}"

log() { printf '[containers] %s\n' "$*" >&2; }
die() { printf '[containers] ERROR: %s\n' "$*" >&2; exit 1; }

compose() {
  bash "$ROOT/ops/compose-secrets.sh" >/dev/null  # .env: the file's ${...} have no defaults
  if [ -n "${COMPOSE:-}" ]; then
    # shellcheck disable=SC2086
    $COMPOSE "$@"
  elif command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    docker compose "$@"
  else
    "$BIN/podman-compose" "$@"
  fi
}

cmd_base() {
  if podman image exists "$BASE"; then log "$BASE: present"; return 0; fi
  [ "$(id -u)" = 0 ] || die "bootstrapping $BASE needs root (debootstrap)"
  local dir t0=$SECONDS
  dir="$(mktemp -d /var/tmp/streams-debian-XXXXXX)"
  log "$BASE is not here (no image registry reachable?): debootstrap --variant=minbase bookworm"
  debootstrap --variant=minbase bookworm "$dir" http://deb.debian.org/debian >"$dir.log" 2>&1 \
    || { tail -n 30 "$dir.log" >&2; rm -rf "$dir"; die "debootstrap failed (log: $dir.log)"; }
  # as in Docker Hub's image: deb822 sources with updates and security, no caches, no docs
  rm -f "$dir/etc/apt/sources.list"
  cat > "$dir/etc/apt/sources.list.d/debian.sources" <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  # the apt and dpkg settings of Docker Hub's slim images: no apt caches, no docs, man pages or locales
  cat > "$dir/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  echo 'Acquire::Languages "none";' > "$dir/etc/apt/apt.conf.d/docker-no-languages"
  echo 'Acquire::GzipIndexes "true";' > "$dir/etc/apt/apt.conf.d/docker-gzip-indexes"
  cat > "$dir/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
  find "$dir/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
  rm -rf "$dir"/var/cache/apt/*.bin "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* \
    "$dir"/usr/share/man/* "$dir"/usr/share/info/* "$dir"/usr/share/locale/* "$dir"/var/log/*.log
  tar -C "$dir" -c . | podman import --change 'CMD ["bash"]' - "$BASE" >/dev/null
  rm -rf "$dir" "$dir.log"
  log "$BASE imported ($(( SECONDS - t0 ))s, $(podman image inspect "$BASE" --format '{{.Size}}' | awk '{printf "%.0f MB", $1/1e6}'))"
}

cmd_build() {
  cmd_base
  local t0=$SECONDS
  # the host's locally trusted CAs go into the images' trust store (ops/images/local-ca/README.md)
  find ops/images/local-ca -name '*.crt' -delete
  if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt ops/images/local-ca/
  fi
  log "building the images of docker-compose.yml"
  compose build >&2
  log "images built in $(( SECONDS - t0 ))s"
  podman images --filter reference='localhost/streams-*' --format '{{.Repository}}:{{.Tag}} {{.Size}}' | sed 's/^/[containers]   /' >&2
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
http_ok() { curl -sf -o /dev/null -m 5 "$1"; }

ready() {
  port_open "$COMPOSE_KAFKA_PORT" \
    && http_ok "http://127.0.0.1:$COMPOSE_REGISTRY_PORT/apis/ccompat/v7/subjects" \
    && curl -sf -m 5 "http://127.0.0.1:$COMPOSE_CONNECT_PORT/connector-plugins" | grep -q JdbcSinkConnector \
    && port_open "$COMPOSE_PG_PORT" \
    && http_ok "http://127.0.0.1:$COMPOSE_WORKER1_PORT/health" \
    && http_ok "http://127.0.0.1:$COMPOSE_WORKER2_PORT/health" \
    && http_ok "http://127.0.0.1:$COMPOSE_PROMETHEUS_PORT/-/ready" \
    && [ "$(connectors_state)" = "exited 0" ]
}

connectors_state() { # "<status> <exit code>" of the one-shot connectors container
  local id
  id="$(podman ps -a -q --filter "label=com.docker.compose.project=$PROJECT" \
        --filter "label=com.docker.compose.service=connectors" | head -1)"
  [ -n "$id" ] && podman inspect "$id" --format '{{.State.Status}} {{.State.ExitCode}}'
}

cmd_up() {
  cmd_build
  local t0=$SECONDS deadline
  log "compose up"
  compose up -d >&2
  deadline=$(( SECONDS + START_TIMEOUT ))
  until ready; do
    if [ $SECONDS -ge $deadline ]; then
      compose ps >&2 || true
      for c in $(podman ps -a --filter "label=com.docker.compose.project=$PROJECT" --format '{{.Names}}'); do
        log "---- last lines of $c"; podman logs --tail 25 "$c" >&2 2>&1 || true
      done
      die "the compose stack did not serve within ${START_TIMEOUT}s"
    fi
    local dead
    dead="$(podman ps -a --filter "label=com.docker.compose.project=$PROJECT" --filter status=exited \
            --format '{{.Names}} {{.Labels}}' | grep -v 'com.docker.compose.service:connectors' | cut -d' ' -f1 || true)"
    if [ -n "$dead" ]; then
      for c in $dead; do log "---- $c exited; its last lines:"; podman logs --tail 40 "$c" >&2 2>&1 || true; done
      die "the compose stack did not come up"
    fi
    case "$(connectors_state || true)" in
      "exited 0"|"") ;;
      exited*) compose logs connectors >&2 || true; die "deploying the connectors failed" ;;
    esac
    sleep 2
  done
  log "compose stack serving in $(( SECONDS - t0 ))s: kafka 127.0.0.1:$COMPOSE_KAFKA_PORT, registry :$COMPOSE_REGISTRY_PORT, connect :$COMPOSE_CONNECT_PORT, postgres :$COMPOSE_PG_PORT, workers :$COMPOSE_WORKER1_PORT :$COMPOSE_WORKER2_PORT, prometheus :$COMPOSE_PROMETHEUS_PORT"
}

cmd_down() {
  compose down -v >&2 || true
  local left
  left="$(podman ps -a --filter "label=com.docker.compose.project=$PROJECT" --format '{{.Names}}')"
  [ -z "$left" ] || { log "removing leftover containers: $left"; podman rm -f -v $left >/dev/null; }
  left="$(podman volume ls --filter "label=com.docker.compose.project=$PROJECT" --format '{{.Name}}')"
  [ -z "$left" ] || podman volume rm -f $left >/dev/null
  [ -z "$(podman ps -a --filter "label=com.docker.compose.project=$PROJECT" -q)" ] || die "containers left running"
  log "compose stack down, nothing left"
}

cmd_socket_start() {
  mkdir -p "$(dirname "$SOCKET")"
  if [ -S "$SOCKET" ] && curl -sf --unix-socket "$SOCKET" -o /dev/null http://d/_ping; then
    echo "unix://$SOCKET"; return 0
  fi
  rm -f "$SOCKET"
  nohup setsid podman system service --time=0 "unix://$SOCKET" >"$(dirname "$SOCKET")/service.log" 2>&1 </dev/null &
  echo $! > "$(dirname "$SOCKET")/service.pid"
  for _ in $(seq 1 50); do
    curl -sf --unix-socket "$SOCKET" -o /dev/null http://d/_ping 2>/dev/null && { echo "unix://$SOCKET"; return 0; }
    sleep 0.2
  done
  die "podman system service did not answer on $SOCKET"
}

cmd_socket_stop() {
  local f; f="$(dirname "$SOCKET")/service.pid"
  if [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; then kill "$(cat "$f")"; fi
  rm -f "$f" "$SOCKET"
}

# The integration tests that run against the compose stack (STREAMS_TEST_STACK=external).
COMPOSE_TESTS=(tests/integration/write/test_commands.py tests/integration/read/test_single_worker.py
               tests/integration/sinks/test_connect_sinks.py tests/compose)
TC_TESTS=(tests/integration/stack/test_stack_smoke.py tests/integration/write/test_commands.py)

cmd_compose_test() {
  local rc=0
  # a stack that did not come up is removed too: the next run must not start its containers again
  ( cmd_up ) || { rc=$?; cmd_down; return $rc; }
  # the generated password for the tests and the host's Connect worker, and the compose workers'
  # token for tests/compose only (the tests' own workers run without one, as in `make test`)
  local pg_password token
  pg_password="$(sed -n 's/^PG_PASSWORD=//p' "$ROOT/.env")"
  token="$(sed -n 's/^STREAMS_AUTH_TOKEN=//p' "$ROOT/.env")"
  # test_connect_sinks.py runs a Connect worker of its own on the host (restartable), with the
  # process stack's jars and the worker config that `ops/stack.sh prepare connect` writes
  KAFKA_PORT=$COMPOSE_KAFKA_PORT REGISTRY_PORT=$COMPOSE_REGISTRY_PORT CONNECT_PORT=$COMPOSE_CONNECT_PORT \
    PG_PORT=$COMPOSE_PG_PORT PG_PASSWORD="$pg_password" bash ops/stack.sh prepare connect
  STREAMS_TEST_STACK=external KAFKA_PORT=$COMPOSE_KAFKA_PORT REGISTRY_PORT=$COMPOSE_REGISTRY_PORT \
    CONNECT_PORT=$COMPOSE_CONNECT_PORT PG_PORT=$COMPOSE_PG_PORT PG_PASSWORD="$pg_password" \
    STREAMS_COMPOSE_TOKEN="$token" STREAMS_COMPOSE_WORKERS="http://127.0.0.1:$COMPOSE_WORKER1_PORT,http://127.0.0.1:$COMPOSE_WORKER2_PORT" \
    STREAMS_COMPOSE_PROMETHEUS="http://127.0.0.1:$COMPOSE_PROMETHEUS_PORT" \
    "$BIN/pytest" -q -p no:cacheprovider "${COMPOSE_TESTS[@]}" || rc=$?
  cmd_down
  return $rc
}

cmd_tc_test() {
  local rc=0 host left
  cmd_build
  host="$(cmd_socket_start)"
  DOCKER_HOST="$host" TESTCONTAINERS_RYUK_DISABLED=true STREAMS_TEST_STACK=testcontainers \
    "$BIN/pytest" -q -p no:cacheprovider "${TC_TESTS[@]}" || rc=$?
  cmd_socket_stop
  left="$(podman ps -a --filter label=org.testcontainers=true -q)"
  if [ -n "$left" ]; then
    log "testcontainers left containers behind: $left"; podman rm -f -v $left >/dev/null
    [ $rc != 0 ] || rc=1
  fi
  return $rc
}

case "${1:-}" in
  base) cmd_base ;;
  build) cmd_build ;;
  up) cmd_up ;;
  down) cmd_down ;;
  socket-start) cmd_socket_start ;;
  socket-stop) cmd_socket_stop ;;
  compose-test) cmd_compose_test ;;
  tc-test) cmd_tc_test ;;
  *) sed -n '2,12p' "$0" >&2; exit 2 ;;
esac
