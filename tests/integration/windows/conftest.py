"""The windows modules' shared fixtures: one devices worker per module, and its fleet."""

from __future__ import annotations

import pytest

from tests.integration.windows.fleet import Fleet
from tests.integration.workers import Deployment, module_deployment

deployment = module_deployment("win", STREAMS_CONTEXTS="devices", STREAMS_SINKS="0")
"""A worker running the devices context (window stage, write side, read side; no sinks)."""


@pytest.fixture(scope="module")
def fleet(deployment: Deployment) -> Fleet:
    """The devices of the module's deployment."""
    return Fleet(deployment.settings(), deployment.url())
