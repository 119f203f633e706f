"""Fixtures shared by the integration tests (the stack itself is `tests/conftest.py`'s `stack`).

A module defines its own `deployment` (worker processes with the environment it needs); the
`client` here is an orders `CommandClient` on that deployment, warmed up.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from streams.client import CommandClient
from tests.integration.workers import Deployment, warmed_client


@pytest.fixture(scope="module")
def client(deployment: Deployment) -> Iterator[CommandClient]:
    """An orders client of the module's deployment, whose first command went through."""
    with warmed_client(deployment.settings()) as c:
        yield c
