"""`streams new context`: the templates make a context that loads, keeps its rules and whose
schemas match its classes (the installed round trip is tests/integration/cli/test_new_context.py)."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from streams.cli.main import main
from streams.cli.scaffold import Names
from streams.core.decider import BoundedContext
from streams.testing import conformance, given, scaffold_samples
from streams.wire.schemas import catalog_for


@pytest.fixture
def on_path(tmp_path: Path) -> Iterator[list[Path]]:
    """Directories put on sys.path for the test (and the modules imported from them dropped)."""
    added: list[Path] = []
    yield added
    for directory in added:
        sys.path.remove(str(directory))
    for name in [m for m in sys.modules if m.startswith("loans_")]:
        del sys.modules[name]


def _load(directory: Path, name: str, on_path: list[Path]) -> BoundedContext:  # type: ignore[type-arg]
    sys.path.insert(0, str(directory))
    on_path.append(directory)
    context = importlib.import_module(name).context
    assert isinstance(context, BoundedContext)
    return context


def test_names_follow_the_context_name() -> None:
    names = Names.of("book_loans")
    assert (names.Name, names.dist) == ("BookLoans", "streams-book-loans")
    assert names.path("schemas/Create__Name__.v1.avsc.tmpl") == "schemas/CreateBookLoans.v1.avsc"


def test_a_package_is_written_with_its_entry_point_schemas_and_tests(
    tmp_path: Path, on_path: list[Path]
) -> None:
    result = CliRunner().invoke(main, ["new", "context", "loans_a", "--package", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    root = tmp_path / "loans_a"
    pyproject = (root / "pyproject.toml").read_text()
    assert '[project.entry-points."streams.contexts"]\nloans_a = "loans_a:context"' in pyproject
    assert (root / "tests" / "test_loans_a.py").exists()
    context = _load(root / "src", "loans_a", on_path)
    assert context.name == "loans_a" and [v.name for v in context.views] == ["loans_a-summary"]
    catalog = catalog_for(context)  # every class has its schema, in the package
    ours = sorted(sv.type_name for sv in catalog.all_versions() if sv.fullname.startswith("loans_a."))
    commands = [f"{verb}LoansA" for verb in ("Create", "Rename", "Close")]
    events = [f"LoansA{what}" for what in ("Created", "Renamed", "Closed", "State")]
    assert ours == sorted([*commands, *events])
    scaffold_samples(context, tmp_path / "samples")
    assert conformance(context, tmp_path / "samples") == []
    module = sys.modules["loans_a"]
    given(context).when(module.CreateLoansA(title="t")).then(module.LoansACreated(title="t"))


def test_the_generated_tests_pass_as_written(tmp_path: Path) -> None:
    CliRunner().invoke(main, ["new", "context", "loans_b", "--package", "--dir", str(tmp_path)])
    root = tmp_path / "loans_b"
    env_path = f"{root / 'src'}:{':'.join(sys.path)}"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=root,
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "6 passed" in done.stdout


def test_without_package_only_the_module_and_its_schemas_are_written(
    tmp_path: Path, on_path: list[Path]
) -> None:
    result = CliRunner().invoke(main, ["new", "context", "loans_c", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert "loans_c/__init__.py" in written and "loans_c/schemas/LoansCState.v1.avsc" in written
    assert not any(p.endswith(("pyproject.toml", ".tmpl")) for p in written)
    assert _load(tmp_path, "loans_c", on_path).aggregate_type == "LoansC"
