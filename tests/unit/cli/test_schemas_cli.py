"""`streams schemas …`: bad input is one line and exit 1; `generate` writes and checks files for a
context in its own package (no registry: the registry cases are tests/integration/wire)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from streams.cli.schemas import schemas
from streams.contexts.registry import contexts

LOANS = '''
from __future__ import annotations

from pathlib import Path
from typing import Annotated

from msgspec import Meta, Struct

from streams.core.decider import BoundedContext


class LendBook(Struct, frozen=True):
    """Lend a book to a member."""

    member_id: Annotated[str, Meta(max_length=64)]
    note: str | None = None


class BookLent(Struct, frozen=True):
    """A book was lent."""

    member_id: str


class Loan(Struct, frozen=True):
    """A book's loan."""

    member_id: str = ""


context = BoundedContext(
    name="{name}", aggregate_type="book", commands=(LendBook,), events=(BookLent,),
    state_type=Loan, initial_state=Loan(), decide=lambda s, c: [BookLent(c.member_id)],
    evolve=lambda s, e: Loan(e.member_id), schema_dir=Path(__file__).parent / "schemas",
)
'''


@pytest.fixture
def loans(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A context `loans_<n>` in a package of its own; yields its (empty) schema directory."""
    name = f"loans_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(LOANS.replace("{name}", name))
    (tmp_path / "schemas").mkdir()
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("STREAMS_CONTEXT_MODULES", name)
    contexts.cache_clear()
    yield tmp_path / "schemas"
    contexts.cache_clear()
    sys.modules.pop(name, None)


def _run(*args: str) -> tuple[int, list[str]]:
    result = CliRunner().invoke(schemas, list(args))
    lines = [line for line in result.output.splitlines() if line.strip()]
    return result.exit_code, lines


def _name(schema_dir: Path) -> str:
    return f"loans_{schema_dir.parent.name.replace('-', '_')}"


def _one_error(args: list[str], says: str) -> None:
    code, lines = _run(*args)
    assert code == 1, lines
    assert len(lines) == 1 and lines[0].startswith("Error: ") and says in lines[0], lines


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["generate", "nope"], "unknown context 'nope'; known: orders, devices, games, wallet"),
        (["generate", "orders", "--dir", "/no/such/dir"], "--dir /no/such/dir: no such directory"),
        (["check", "nope", "--offline"], "unknown context 'nope'"),
        (["register", "nope"], "unknown context 'nope'"),
        (["diff", "nope", "AddItem"], "unknown context 'nope'"),
        (["diff", "orders", "Nope"], "Nope is not a command, event or state of orders"),
        (["diff", "orders", "AddItem", "--from", "7"], "AddItem has versions [1, 2, 3]"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_1(args: list[str], says: str) -> None:
    _one_error(args, says)


def test_an_unreachable_registry_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCHEMA_REGISTRY_URL", "http://127.0.0.1:9/apis/ccompat/v7")
    _one_error(["check", "orders"], "schema registry at http://127.0.0.1:9/apis/ccompat/v7 is not reachable")


def test_generate_then_check_a_context_of_its_own(loans: Path) -> None:
    name = _name(loans)
    code, lines = _run("generate", name, "--check")
    assert code == 1 and "3 schema file(s) out of date" in lines[-1], lines
    assert not list(loans.iterdir()), "--check writes nothing"

    code, lines = _run("generate", name)
    assert code == 0, lines
    assert sorted(p.name for p in loans.iterdir()) == ["BookLent.v1.avsc", "LendBook.v1.avsc", "Loan.v1.avsc"]
    lend = json.loads((loans / "LendBook.v1.avsc").read_text())
    assert lend["namespace"] == name and lend["doc"] == "Lend a book to a member."
    assert lend["fields"][0] == {"name": "member_id", "type": "string", "maxLength": 64}
    assert lend["fields"][1] == {"name": "note", "type": ["null", "string"], "default": None}

    code, lines = _run("generate", name, "--check")
    assert code == 0 and all("agrees with the class" in line for line in lines), lines
    code, lines = _run("check", name, "--offline")
    assert code == 0 and "agree with their classes" in lines[-1], lines


def test_check_fails_when_a_file_no_longer_agrees_with_its_class(loans: Path) -> None:
    name = _name(loans)
    assert _run("generate", name)[0] == 0
    path = loans / "BookLent.v1.avsc"
    schema = json.loads(path.read_text())
    schema["fields"].append({"name": "due", "type": "long", "default": 0})
    path.write_text(json.dumps(schema))
    code, lines = _run("check", name, "--offline")
    assert code == 1, lines
    assert any("BookLent: the class and BookLent.v1.avsc disagree" in line for line in lines), lines
    assert any("- due:" in line for line in lines), lines
    code, lines = _run("generate", name)
    assert code == 0 and (loans / "BookLent.v2.avsc").exists(), lines


CHECK, GENERATE, DIFF = ["check", "{ctx}", "--offline"], ["generate", "{ctx}"], ["diff", "{ctx}", "LendBook"]


@pytest.mark.parametrize(
    ("file", "content", "says", "commands"),
    [
        ("LendBook.v1.avsc", "{not json", "LendBook.v1.avsc: not readable as JSON", [CHECK, GENERATE, DIFF]),
        (
            "LendBook.v1.avsc",
            '{"type": "record", "name": "LendBook", "fields": [{"name": "x", "type": "no"}]}',
            "not valid Avro",
            [CHECK, GENERATE, DIFF],
        ),
        (
            "LendBook.v1.avsc",
            '{"type": "record", "name": "Other", "fields": []}',
            "record name 'Other' != 'LendBook'",
            [CHECK, GENERATE, DIFF],
        ),
        ("LendBook.v1.avsc", "[]", "not an Avro record schema", [CHECK, GENERATE, DIFF]),
        ("compatibility.json", '{"default": "SOMETIMES"}', "unknown compatibility level 'SOMETIMES", [CHECK]),
        ("compatibility.json", '{"subjects": {"Nope": "FULL"}}', "'Nope' is not a command, event", [CHECK]),
        ("compatibility.json", "{oops", "not a readable JSON policy", [CHECK]),
    ],
)
def test_an_unreadable_schema_or_policy_file_is_one_line(
    loans: Path, file: str, content: str, says: str, commands: list[list[str]]
) -> None:
    assert _run("generate", _name(loans))[0] == 0
    (loans / file).write_text(content)
    for command in commands:
        _one_error([arg.replace("{ctx}", _name(loans)) for arg in command], says)
