"""Fixtures of the sink tests: a private Connect worker per module (tests/integration/sinks/kit.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import StackEndpoints
from tests.integration.sinks.kit import PrivateConnect


@pytest.fixture(scope="module")
def connect(stack: StackEndpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateConnect]:
    """A Kafka Connect worker of the module's own (restartable without touching the stack's)."""
    worker = PrivateConnect(tmp_path_factory.mktemp("connect"), stack.bootstrap, stack.pg_dsn)
    worker.start()
    yield worker
    worker.stop()
