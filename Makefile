# One entry point per job. `make demo` and `make test` are the README's two commands; each installs
# what it needs first (ops/prereqs.sh: Debian packages as root, .venv, npm packages, the registry's JDK).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export PY VENV

.PHONY: install stack-up stack-down stack-status demo test unit integration lint bench bench-read clean

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

test:
	@bash ops/prereqs.sh test
	@$(BIN)/pytest -q tests; rc=$$?; bash ops/summary.sh test $$rc; exit $$rc

lint: install
	$(BIN)/ruff check streams tests
	$(BIN)/ruff format --check streams tests
	$(BIN)/mypy

bench: stack-up
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python -m streams.bench

bench-read: stack-up
	$(BIN)/python -m streams.bench_read

clean:
	rm -rf $(VENV) .stack bench-results
