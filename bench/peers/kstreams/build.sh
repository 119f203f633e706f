#!/usr/bin/env bash
# Builds scenario h of the benchmark (the Kafka Streams peer) from this directory's own files:
# pom.xml resolves Kafka Streams and its test driver from Maven Central (the mechanism and cache
# of ops/artifacts.sh), then the JDK's javac compiles src/ (Java 17+: Kafka Streams 4.x needs 11+).
#
#   bash bench/peers/kstreams/build.sh     prints java=<java binary> and classpath=<classes>:<lib>/*
#                                          (exit status 3: no JDK 17+ on this machine)
#
# Both outputs are cached under $STREAMS_STACK_HOME/bench-kstreams, keyed by a checksum of the pom
# (the jars) and of the pom and sources (the classes): a second run calls neither Maven nor javac.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log() { printf '[bench kstreams] %s\n' "$*" >&2; }
die() { printf '[bench kstreams] ERROR: %s\n' "$*" >&2; exit 1; }
# shellcheck source=ops/artifacts.sh
source "$HERE/../../../ops/artifacts.sh"

POM="$HERE/pom.xml"
grep -q "<kafka.version>$KAFKA_VERSION</kafka.version>" "$POM" \
  || die "KAFKA_VERSION=$KAFKA_VERSION (the broker's) differs from $POM; edit the pom"

# A JDK 17+: $JAVA_HOME if it has one, else javac/java on PATH (Debian: openjdk-17-jdk-headless).
if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/javac" ]; then
  JAVA="$JAVA_HOME/bin/java"; JAVAC="$JAVA_HOME/bin/javac"
else
  JAVA="$(command -v java || true)"; JAVAC="$(command -v javac || true)"
fi
no_jdk() { printf '[bench kstreams] ERROR: %s\n' "$*" >&2; exit 3; }  # exit 3: no JDK 17+ here
[ -n "$JAVAC" ] && [ -n "$JAVA" ] || no_jdk "no JDK found (javac); as root: apt-get install -y openjdk-17-jdk-headless"
[ "$(java_major "$JAVA")" -ge 17 ] 2>/dev/null || no_jdk "$JAVA is older than Java 17"

CACHE="$STREAMS_STACK_HOME/bench-kstreams"
mkdir -p "$CACHE"
LIB="$CACHE/lib-$(pom_stamp "$POM")"
if [ ! -f "$LIB/.resolved" ]; then
  need_mvn
  log "resolving Kafka Streams $KAFKA_VERSION from Maven Central ($POM)"
  tmp="$(mktemp -d "$CACHE/.lib.XXXXXX")"
  run_mvn -f "$POM" "$MVN_DEP_PLUGIN:copy-dependencies" -DoutputDirectory="$tmp" -DincludeScope=runtime \
    || { rm -rf "$tmp"; die "Maven resolution of Kafka Streams failed"; }
  touch "$tmp/.resolved"
  mv -T "$tmp" "$LIB" 2>/dev/null || rm -rf "$tmp"  # a concurrent build got there first
fi

SOURCES=("$HERE"/src/streamsbench/*.java)
CLASSES="$CACHE/classes-$(cat "$POM" "${SOURCES[@]}" | cksum | cut -d' ' -f1)"
if [ ! -f "$CLASSES/.built" ]; then
  log "compiling ${#SOURCES[@]} Java sources"
  tmp="$(mktemp -d "$CACHE/.classes.XXXXXX")"
  "$JAVAC" --release 17 -Xlint:all -Werror -cp "$LIB/*" -d "$tmp" "${SOURCES[@]}" >&2 \
    || { rm -rf "$tmp"; die "javac failed"; }
  touch "$tmp/.built"
  mv -T "$tmp" "$CLASSES" 2>/dev/null || rm -rf "$tmp"
fi
echo "java=$JAVA"
echo "classpath=$CLASSES:$LIB/*"
