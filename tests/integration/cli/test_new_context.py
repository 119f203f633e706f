"""Done-when of issue 30 (scaffold): a context package written by `streams new context --package`
installs into the venv, passes its own tests, registers its schemas, runs in a worker with a
topic prefix, takes commands over HTTP and the CLI, and `streams tail <ctx>.events` reads them.

The package is installed into the shared virtualenv under a unique name and uninstalled at
teardown, whatever happened. It is installed as a regular (not editable) distribution: an editable
install is found through a `.pth` file, which only processes started after it read, so any other
process running in the venv (someone else's tests) that looks its contexts up meanwhile would see
the entry point and fail to import the module (`ModuleNotFoundError`, observed). That `pip install
-e` accepts the package is checked with a private `--prefix`, which no other process sees."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import StackEndpoints
from tests.integration.read.test_two_workers import streams_cli as streams
from tests.integration.workers import Deployment

pytestmark = pytest.mark.integration


def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    """Run a command; its stdout (the test fails with its output when it fails)."""
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    said = f"{' '.join(args[:6])}… exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    assert done.returncode == 0, said
    assert "still in queue" not in done.stderr, done.stderr  # producers are flushed before exit
    return done.stdout


@pytest.fixture
def package(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A new context package (unique name), installed editable; uninstalled after the test."""
    name = f"lib{uuid.uuid4().hex[:8]}"
    run(sys.executable, "-m", "streams.cli", "new", "context", name, "--package", "--dir", str(tmp_path))
    root = tmp_path / name
    editable = tmp_path / "editable"
    run(sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--prefix", str(editable), "-e", str(root))
    assert list(editable.rglob(f"__editable__.streams_{name}-0.1.0.pth"))
    try:
        run(sys.executable, "-m", "pip", "install", "-q", str(root), timeout=600)
        yield name, root
    finally:
        subprocess.run(
            [sys.executable, "-m", "pip", "uninstall", "-y", "-q", f"streams-{name}"],
            capture_output=True,
            timeout=300,
        )


def post(url: str, body: dict[str, object]) -> dict[str, object]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 200
        return dict(json.loads(response.read()))


def test_a_scaffolded_context_runs_end_to_end(
    stack: StackEndpoints, tmp_path: Path, package: tuple[str, Path]
) -> None:
    name, root = package
    camel = name.capitalize()
    assert "6 passed" in run(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=root)

    dep = Deployment(
        prefix=f"n{uuid.uuid4().hex[:8]}",
        data_dir=tmp_path / "data",
        extra_env={"STREAMS_CONTEXTS": name, "STREAMS_SINKS": "0"},
    )
    dep.data_dir.mkdir()
    # the schemas are generated from the installed classes: into an empty folder, they come out
    # equal to the ones the package ships, and against those `--check` has nothing to write
    shipped = root / "src" / name / "schemas"
    fresh = tmp_path / "generated"
    fresh.mkdir()
    generated = streams(dep, "schemas", "generate", name, "--dir", str(fresh))
    assert generated.returncode == 0, generated.stdout + generated.stderr
    avsc = sorted(p.name for p in shipped.glob("*.avsc"))
    assert sorted(p.name for p in fresh.glob("*.avsc")) == avsc and len(avsc) == 7
    for file in avsc:
        assert json.loads((fresh / file).read_text()) == json.loads((shipped / file).read_text()), file
    checked = streams(dep, "schemas", "generate", name, "--check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"Create{camel}: v1 agrees with the class" in checked.stdout
    registered = streams(dep, "schemas", "register", name)
    assert registered.returncode == 0, registered.stdout + registered.stderr
    subject = f"{dep.prefix}.{name}.Create{camel}"  # subjects carry the deployment's topic prefix
    assert subject in registered.stdout
    declared = json.loads((root / "src" / name / "schemas" / "compatibility.json").read_text())["default"]
    with urllib.request.urlopen(f"{stack.registry_url}/config/{subject}", timeout=30) as answer:
        assert json.loads(answer.read())["compatibilityLevel"] == declared  # the level it declares
    dep.start("w1")
    try:
        dep.wait_healthy("w1")
        banner = (dep.data_dir / "w1.log").read_text(errors="replace")
        assert "rocksdb:" in banner and "memory:" not in banner  # Faust's banner names the real store
        result = post(
            f"{dep.url()}/{name}/commands/Create{camel}", {"aggregate_id": "x-1", "data": {"title": "first"}}
        )
        assert result["status"] == "accepted" and result["aggregate_version"] == 1, result

        sent = streams(
            dep,
            *("send", name, f"Rename{camel}", "--id", "x-1", "--data", '{"title": "second"}'),
            *("--expected-version", "1", "--wait"),
        )
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert json.loads(sent.stdout)["aggregate_version"] == 2
        assert "still in queue" not in sent.stderr

        tail = streams(dep, "tail", f"{name}.events")  # the logical name: the prefix is added
        assert tail.returncode == 0, tail.stdout + tail.stderr
        types = [json.loads(line)["value"]["type"] for line in _json_lines(tail.stdout)]
        assert types == [f"{camel}Created", f"{camel}Renamed"], tail.stdout

        missing = streams(dep, "tail", f"{name}.no-such-topic")
        assert missing.returncode == 2
        topic = f"{dep.prefix}.{name}.no-such-topic"
        expected = f"error: no topic {topic} (topic prefix '{dep.prefix}.') (unknown_topic)"
        assert missing.stderr.strip() == expected
    finally:
        dep.stop_all()


def _json_lines(text: str) -> list[str]:
    """The records `streams tail` printed (rich pretty-prints each; they are split on `}\\n{`)."""
    records, current = [], []
    for line in text.splitlines():
        current.append(line)
        if line == "}":
            records.append("\n".join(current))
            current = []
    return records
