#!/usr/bin/env bash
# Debian's Prometheus (package `prometheus`) scraping local workers, with ops/prometheus/rules.yml:
#
#   bash ops/prometheus/local.sh [host:port ...]      default: 127.0.0.1:${STREAMS_WEB_PORT:-6066}
#
# Environment: PROMETHEUS_PORT (9090; it listens on 127.0.0.1 only), STREAMS_AUTH_TOKEN (the
# workers' bearer token, if they have one: written to a file only this user reads),
# PROMETHEUS_DIR (.prometheus: the generated config and the data). Runs in the foreground (exec).
# The console page ops/prometheus/consoles/streams.html (the panels of a worker's /dashboard, over
# every worker) is served at /consoles/streams.html.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DIR="${PROMETHEUS_DIR:-$HERE/../../.prometheus}"
PORT="${PROMETHEUS_PORT:-9090}"
command -v prometheus >/dev/null || {
  echo "no prometheus: sudo apt-get install prometheus (or: bash ops/prereqs.sh test)" >&2; exit 1; }
[ $# -gt 0 ] || set -- "127.0.0.1:${STREAMS_WEB_PORT:-6066}"

mkdir -p "$DIR/data"
cp "$HERE/rules.yml" "$DIR/rules.yml"
auth=""
if [ -n "${STREAMS_AUTH_TOKEN:-}" ]; then
  (umask 077; printf '%s' "$STREAMS_AUTH_TOKEN" > "$DIR/token")
  auth="    authorization: {type: Bearer, credentials_file: $DIR/token}"
fi
targets="$(printf '"%s", ' "$@")"
cat > "$DIR/prometheus.yml" <<YAML
# written by ops/prometheus/local.sh
global:
  scrape_interval: 5s
  evaluation_interval: 5s
rule_files: [rules.yml]
scrape_configs:
  - job_name: streams-worker
    metrics_path: /metrics
$auth
    static_configs:
      - targets: [${targets%, }]
YAML
echo "[prometheus] http://127.0.0.1:$PORT scraping $*" >&2
echo "[prometheus] the workers' panels: http://127.0.0.1:$PORT/consoles/streams.html" >&2
exec prometheus --config.file="$DIR/prometheus.yml" --storage.tsdb.path="$DIR/data" \
  --web.listen-address="127.0.0.1:$PORT" --log.level=warn \
  --web.console.templates="$HERE/consoles" --web.console.libraries="$HERE/consoles"
