# One entry point per job. `make demo` and `make test` are the README's two commands.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install stack-up stack-down stack-status demo test unit integration lint bench bench-read bench-realtime bench-failover clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,dev]'
	touch $(STAMP)

install: $(STAMP)

stack-up: install
	bash ops/stack.sh up

stack-down:
	bash ops/stack.sh down

stack-status:
	bash ops/stack.sh status

demo: stack-up
	$(BIN)/streams demo

unit: install
	$(BIN)/pytest -q tests/unit

test: stack-up
	$(BIN)/pytest -q tests

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

bench-realtime: stack-up
	$(BIN)/python -m bench.realtime

bench-failover: stack-up
	$(BIN)/python -m bench.failover

bench-read: stack-up
	$(BIN)/python -m bench.read

clean:
	rm -rf $(VENV) .stack bench-results
