# One entry point per job. `make demo` and `make test` are the README's two commands; each installs
# what it needs first (ops/prereqs.sh: Debian packages as root, .venv, npm packages, the registry's JDK).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export PY VENV

.PHONY: install stack-up stack-down stack-status demo test test-secure test-secure-short unit integration lint bench bench-short bench-docs bench-read bench-realtime \
	bench-failover bench-overhead soak soak-short chaos chaos-short chaos-games chaos-games-short bench-games clean images compose-up compose-down compose-test testcontainers-test

install:
	bash ops/prereqs.sh lint

stack-up:
	bash ops/prereqs.sh demo
	bash ops/stack.sh up

stack-down:
	bash ops/stack.sh down

stack-status:
	bash ops/stack.sh status

demo:
	@bash ops/prereqs.sh demo
	@bash ops/stack.sh up >/dev/null
	@$(BIN)/streams demo; rc=$$?; bash ops/summary.sh demo $$rc; exit $$rc

unit: install
	$(BIN)/pytest -q tests/unit

# the suite, then the short form of test-secure (one write, read, window and sink test on the
# SASL_SSL stack, on side ports; its status counts)
test:
	@bash ops/prereqs.sh test
	@$(BIN)/pytest -q tests --ignore=tests/compose; rc=$$?; \
		bash ops/test-secure.sh short || { [ $$rc != 0 ] || rc=1; }; bash ops/summary.sh test $$rc; exit $$rc

# The write, read, windows and sink integration tests on the SASL/SCRAM + TLS + ACLs stack
# (ops/test-secure.sh: its own stack on side ports, data in .stack-secure, stopped at the end;
# the two fault-injection modules are not run there). See docs/operations.md.
test-secure:
	@bash ops/prereqs.sh test
	bash ops/test-secure.sh

test-secure-short:
	@bash ops/prereqs.sh test
	bash ops/test-secure.sh short

lint: install
	$(BIN)/ruff check streams bench tests
	$(BIN)/ruff format --check streams bench tests
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: stack-up
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python -m bench
	$(BIN)/python -m bench.realtime
	$(BIN)/python -m bench.failover
	$(BIN)/python -m bench.http

# The same scenarios at smaller sizes (a fifth to a tenth; about 15 minutes here): figures to
# compare within one run, not the targets' run. Its result files record the sizes (BENCHMARKS.md
# shows them beside the figures).
BENCH_SHORT_ENV := BENCH_COMMANDS=20000 BENCH_AGGREGATES=2000 BENCH_MEMORY_AGGREGATES=20000 \
	BENCH_BASELINE_MAX_S=60 BENCH_LATENCY_COMMANDS=2000 BENCH_TELEMETRY_DEVICES=2000 \
	BENCH_TELEMETRY_READINGS=60000 BENCH_TELEMETRY_SECONDS=20 BENCH_TELEMETRY_MEMORY_DEVICES=10000 \
	BENCH_FAILOVER_EVENTS=100000 BENCH_FAILOVER_AGGREGATES=10000 BENCH_HTTP_COMMANDS=400 \
	BENCH_RT_SSE=2000 BENCH_RT_WS=200
bench-short: stack-up
	$(BIN)/pip install -q -e '.[bench]'
	$(BENCH_SHORT_ENV) $(BIN)/python -m bench
	$(BENCH_SHORT_ENV) $(BIN)/python -m bench.realtime
	$(BENCH_SHORT_ENV) $(BIN)/python -m bench.failover
	$(BENCH_SHORT_ENV) $(BIN)/python -m bench.http

# BENCHMARKS.md's tables and plots and the README's figures, from the committed bench/results files.
bench-docs:
	$(BIN)/python -m bench.benchmarks_md

bench-realtime: stack-up
	$(BIN)/python -m bench.realtime

bench-failover: stack-up
	$(BIN)/python -m bench.failover

# The signals' cost on the write path's figure: rounds of off / on / on without RocksDB statistics
# (bench/overhead.py; writes bench/results/overhead-<time>.json).
bench-overhead: stack-up
	$(BIN)/python -m bench.overhead

bench-read: stack-up
	$(BIN)/python -m bench.read

# One worker under 1,000 commands/s, 5,000 readings/s and 200 SSE clients; RSS and open files every
# 10 s; passes when RSS grows < 1 MiB/min over the 10 minutes after a 5-minute warm-up (bench/soak.py;
# SOAK_* settings). Not in `make test`.
soak: stack-up
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python -m bench.soak

# The same for 90 s (warm-up 30 s), for CI: it runs end to end and writes the curve; the verdict
# is informational (90 s is mostly warm-up).
soak-short: stack-up
	$(BIN)/pip install -q -e '.[bench]'
	SOAK_SECONDS=90 SOAK_WARMUP_SECONDS=30 SOAK_FAIL_ON_VERDICT=0 SOAK_OUT=bench-results $(BIN)/python -m bench.soak

# The three-broker cluster under faults (bench/chaos): its own cluster and registry on side ports
# (19092-19094, 18081; data in .stack-chaos of this checkout), one worker under steady command load,
# the seven scenarios of issue 25 one at a time, then the checker; a table and
# bench/results/chaos-<time>.json. Not in `make test`; the cluster is stopped at the end.
chaos:
	@bash ops/prereqs.sh demo
	$(BIN)/python -m bench.chaos

# One scenario (kill -9 an events partition's leader), for CI (.ci/run).
chaos-short:
	@bash ops/prereqs.sh demo
	CHAOS_SCENARIOS=leader $(BIN)/python -m bench.chaos

# The games example while the worker hosting the settlement process is killed -9 again and again
# (bench/games): on the default stack, 50 rounds, 6,250 bets, 10 kills, then the checker;
# bench/results/games-chaos-<time>.json. The short form (10 rounds, 600 bets, 3 kills) is for CI.
# The games bench (bench/games/burst.py): a burst of 5,000 bets/s for 5 s on one round (p99 bet ->
# result) and the settlement of 500 bets to wallet credits; bench/results/games-bench-<time>.json.
bench-games: stack-up
	$(BIN)/python -m bench.games.burst

chaos-games: stack-up
	$(BIN)/python -m bench.games.chaos

chaos-games-short: stack-up
	GAMES_CHAOS_ROUNDS=10 GAMES_CHAOS_BETS=60 GAMES_CHAOS_KILLS=3 GAMES_CHAOS_CLOSE_S=30 GAMES_CHAOS_OUT=bench-results \
		$(BIN)/python -m bench.games.chaos

# The container stack under Podman (docker-compose.yml, ops/images/Containerfile); see ops/README.md.
images:
	@bash ops/prereqs.sh compose
	bash ops/containers.sh build

compose-up:
	@bash ops/prereqs.sh compose
	bash ops/containers.sh up

compose-down:
	bash ops/containers.sh down

# compose stack up, write-side, read-side and sink tests + the compose workers' own tests, down
compose-test:
	@bash ops/prereqs.sh compose
	bash ops/containers.sh compose-test

# a subset of the integration tests on containers started through testcontainers
testcontainers-test:
	@bash ops/prereqs.sh compose
	bash ops/containers.sh tc-test

clean:
	rm -rf $(VENV) .stack bench-results
