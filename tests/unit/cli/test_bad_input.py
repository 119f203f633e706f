"""Every `streams` subcommand answers bad arguments with one line and a non-zero exit, with the
HTTP API's reasons, before it touches Kafka (these tests run without a stack)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from streams.cli.inputs import topic_named
from streams.cli.main import main
from streams.config import Settings

ORDER = ("orders", "PlaceOrder", "--id", "o-1", "--data", '{"customer_id": "c"}')
UNKNOWN_CONTEXT = "unknown context 'loans'; known: orders, devices, games, wallet (unknown_context)"


def run(*args: str) -> tuple[int, str]:
    """Exit status and everything printed (stdout and stderr)."""
    result = CliRunner().invoke(main, list(args), env={"STREAMS_DEBUG": "0"})
    return result.exit_code, result.output


def said_once(output: str) -> str:
    """The one line an error printed (fails when there is more, e.g. a traceback or a usage block)."""
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("error: "), output
    return lines[0].removeprefix("error: ")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("send", "loans", "PlaceOrder", "--id", "o-1"), UNKNOWN_CONTEXT),
        (
            ("send", "orders", "PlaceOrder", "--id", "o-1", "--data", '{"customer_id": 7}'),
            "data.customer_id must be a string, not an integer (invalid_field)",
        ),
        (
            ("send", "orders", "AddItem", "--id", "o-1", "--data", '{"sku": "w", "quantity": 2.5}'),
            "data.quantity must be an integer (long), not a number with a fraction (invalid_field)",
        ),
        (
            ("send", "orders", "AddItem", "--id", "o-1", "--data", '{"sku": "w", "quantity": 2}'),
            "data.unit_price_cents is missing (it has no default) (invalid_field)",
        ),
        (
            ("send", "orders", "PlaceOrder", "--id", "o-1", "--data", '{"customer_id": "c", "x": 1}'),
            "data.x is not a field of this message (invalid_field)",
        ),
        (("send", "orders", "PlaceOrder", "--id", "o-1", "--data", "{"), "--data is not valid JSON"),
        (("send", "orders", "PlaceOrder", "--id", "o-1", "--data", "[1]"), "data must be a JSON object"),
        (("send", "orders", "Ship", "--id", "o-1"), "unknown command type 'Ship'; known: PlaceOrder"),
        (
            ("send", "orders", "PlaceOrder", "--id", "", "--data", '{"customer_id": "c"}'),
            "aggregate_id must not be empty (invalid_identifier)",
        ),
        (
            ("send", "orders", "PlaceOrder", "--id", "o\x01", "--data", '{"customer_id": "c"}'),
            "aggregate_id contains the control character U+0001 at position 1 (invalid_identifier)",
        ),
        (
            ("send", *ORDER, "--command-id", "x" * 300),
            "command_id has 300 characters; at most 255 (invalid_identifier)",
        ),
        (
            ("send", *ORDER, "--expected-version", "-1"),
            "expected_version must be an integer from 0 (invalid_envelope)",
        ),
        (("send", "orders", "PlaceOrder"), "Missing option '--id'."),
        (
            ("send", "orders", "PlaceOrder", "--id", "o-1", "--expected-version", "one"),
            "'one' is not a valid integer",
        ),
    ],
)
def test_send_refuses_bad_input_in_one_line(args: tuple[str, ...], expected: str) -> None:
    status, output = run(*args)
    assert status == 2
    assert expected in said_once(output), output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("tail", "loans.events"), UNKNOWN_CONTEXT),
        (
            ("tail", "events"),
            "'events' is not a topic name like orders.events (<context>.<topic>) (invalid_topic)",
        ),
        (("tail",), "Missing argument 'TOPIC'."),
        (("state", "loans", "o-1"), UNKNOWN_CONTEXT),
        (("state", "orders", "o\x00"), "aggregate_id contains the control character U+0000"),
        (("state", "orders"), "Missing argument 'AGGREGATE_ID'."),
        (("replay", "loans", "summary"), UNKNOWN_CONTEXT),
        (("replay", "orders", "summary"), "orders has no view 'summary'; views: order-summary"),
        (("replay", "orders", "order-summary", "--max-lag", "x"), "'x' is not a valid integer"),
        (("replay", "orders", "order-summary", "--processes", "-1"), "-1 is not in the range 0<=x<=64"),
        (("rebuild", "loans"), UNKNOWN_CONTEXT),
        (("rebuild",), "Missing argument 'CONTEXT'."),
        (("verify", "loans"), UNKNOWN_CONTEXT),
        (("verify",), "Missing argument 'CONTEXT'."),
        (("stack", "restart"), "'restart' is not one of 'up', 'down'"),
        (("worker", "--processes", "0"), "0 is not in the range x>=1"),
        (("demo", "orders"), "Got unexpected extra argument (orders)"),
        (("connect", "deploy", "now"), "Got unexpected extra argument (now)"),
        (("connect", "status", "--yaml"), "No such option: --yaml"),
        (("connect", "remove", "all"), "Got unexpected extra argument (all)"),
        (("connect", "restart"), "No such command 'restart'."),
        (("frobnicate",), "No such command 'frobnicate'."),
        (("new", "context", "Library-Loans"), "'Library-Loans' is not a context name"),
        (("new", "thing", "library"), "No such command 'thing'."),
    ],
)
def test_every_subcommand_refuses_bad_arguments_in_one_line(args: tuple[str, ...], expected: str) -> None:
    status, output = run(*args)
    assert status == 2
    assert expected in said_once(output), output


@pytest.mark.parametrize(
    "args",
    [
        ("schemas", "check", "loans", "--offline"),
        ("schemas", "register", "loans"),
        ("schemas", "diff", "orders", "NoSuchType"),
        ("schemas", "diff", "orders"),
    ],
)
def test_schemas_subcommands_refuse_bad_arguments_in_one_line(args: tuple[str, ...]) -> None:
    status, output = run(*args)
    assert status != 0
    said_once(output)


def test_a_worker_of_an_unknown_context_is_refused_before_it_starts() -> None:
    result = CliRunner().invoke(main, ["worker"], env={"STREAMS_CONTEXTS": "orders,loans"})
    assert result.exit_code == 2
    assert said_once(result.output) == UNKNOWN_CONTEXT


def test_new_context_refuses_a_directory_that_exists(tmp_path: Path) -> None:
    (tmp_path / "library").mkdir()
    status, output = run("new", "context", "library", "--dir", str(tmp_path))
    assert status == 2
    assert "exists already" in said_once(output)


def test_an_unexpected_failure_is_one_line_naming_its_type(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the registry said no\nsecond line")

    monkeypatch.setattr("streams.kafka.runtime.ContextRuntime.connect", broken)
    status, output = run("rebuild", "orders")
    assert status == 1
    assert said_once(output) == "RuntimeError: the registry said no second line"


def test_a_topic_is_named_logically_or_in_full_under_a_prefix() -> None:
    settings = replace(Settings(), topic_prefix="t1.")
    for given_name in ("orders.events", "t1.orders.events"):
        context, topic = topic_named(settings, given_name)
        assert (context.name, topic) == ("orders", "t1.orders.events")
    assert topic_named(settings, "devices.telemetry.dlq")[1] == "t1.devices.telemetry.dlq"
    unprefixed = replace(settings, topic_prefix="")
    assert topic_named(unprefixed, "orders.order-summary")[1] == "orders.order-summary"
