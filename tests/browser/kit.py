"""What the browser tests share: the tools they need, and a worker with a bearer token."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.integration.workers import Deployment, deployed

HERE = Path(__file__).parent
TOKEN = "browser-token"


def require_browser() -> None:
    """Fail (not skip) without Debian's chromium, node and the npm packages."""
    if (
        not Path("/usr/bin/chromium").exists()
        or shutil.which("node") is None
        or not (HERE / "node_modules" / "playwright-core").exists()
    ):
        pytest.fail(
            "needs /usr/bin/chromium, node and tests/browser/node_modules: `make test` installs them "
            "(bash ops/prereqs.sh test)"
        )


@contextmanager
def token_worker(letter: str, data_dir: Path, **extra_env: str) -> Iterator[Deployment]:
    """One healthy worker `w1` of a new deployment that wants `TOKEN`, without sinks."""
    require_browser()
    env = {"STREAMS_AUTH_TOKEN": TOKEN, "STREAMS_SECRET": "test-secret", "STREAMS_SINKS": "0", **extra_env}
    with deployed(data_dir, letter, **env) as dep:
        yield dep
