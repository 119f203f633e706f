#!/bin/sh
# Prometheus of docker-compose.yml: the workers' bearer token (STREAMS_AUTH_TOKEN, from the .env
# that ops/compose-secrets.sh generates) goes into the file prometheus.yml names (mode 600, in a
# directory only Prometheus' user may enter), never into the config itself.
set -eu
: "${STREAMS_AUTH_TOKEN:?STREAMS_AUTH_TOKEN is not set (run bash ops/compose-secrets.sh)}"
umask 077
printf '%s' "$STREAMS_AUTH_TOKEN" > /var/lib/prometheus/secrets/worker-token
exec /usr/bin/prometheus --config.file=/etc/prometheus/prometheus.yml \
  --storage.tsdb.path=/var/lib/prometheus/metrics2 --web.listen-address=0.0.0.0:9090
