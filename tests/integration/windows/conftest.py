"""The windows modules' shared fixtures: one devices worker per module, and its fleet."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import StackEndpoints
from tests.integration.windows.fleet import Fleet
from tests.integration.workers import Deployment, deployed


@pytest.fixture(scope="module")
def deployment(stack: StackEndpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """A worker running the devices context (window stage, write side, read side; no sinks)."""
    with deployed(
        tmp_path_factory.mktemp("worker"), "win", STREAMS_CONTEXTS="devices", STREAMS_SINKS="0"
    ) as dep:
        yield dep


@pytest.fixture(scope="module")
def fleet(deployment: Deployment) -> Fleet:
    """The devices of the module's deployment."""
    return Fleet(deployment.settings(), deployment.url())
