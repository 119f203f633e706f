#!/usr/bin/env bash
# The closing summary of `make demo` / `make test`: what ran, where the logs are, how to stop.
#   bash ops/summary.sh demo|test <exit status>
set -uo pipefail
STREAMS_STACK_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=ops/stack.env
source "$STREAMS_STACK_REPO/ops/stack.env"
what="$1" rc="$2"
verdict=$([ "$rc" = 0 ] && echo "OK" || echo "FAILED (exit $rc)")
mode="${STREAMS_TEST_STACK:-process}"
echo
echo "==== make $what: $verdict"
case "$what" in
  demo) echo "ran:   ops/prereqs.sh demo (installs), ops/stack.sh up, streams demo (a worker, a scripted story, a burst)" ;;
  test) echo "ran:   ops/prereqs.sh test (installs), pytest tests (unit, integration, browser) on the '$mode' stack,"
        echo "       then ops/test-secure.sh short (write, read, window and sink tests on the SASL_SSL stack, stopped after)" ;;
esac
if [ "$what" = demo ] || [ "$mode" = process ]; then
  echo "stack: $(bash "$STREAMS_STACK_REPO/ops/stack.sh" status 2>/dev/null | awk '{printf "%s %s:%s  ", $1, $2, $4}')"
  echo "logs:  $STREAMS_STACK_DATA/logs/<service>.log$([ "$what" = demo ] && echo ", demo worker: .stack/logs/demo-worker.log")"
  echo "       (bash ops/stack.sh logs [service] shows their tails)"
fi
[ "$what" = test ] && echo "       test workers log into pytest's temporary folders (/tmp/pytest-of-$(id -un)/pytest-current/)"
if [ "$what" = demo ] || [ "$mode" = process ]; then
  echo "stop:  make stack-down   (the stack keeps running for the next command until then)"
fi
exit 0
