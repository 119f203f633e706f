"""Process managers are found like contexts: entry points and STREAMS_PROCESS_MODULES."""

from __future__ import annotations

import pytest

from streams.contexts import registry, settlement
from tests.processes import order_timeout

process = object()
"""What this module offers as its `process`: not a manager."""


def test_a_process_module_named_in_the_environment_is_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMS_PROCESS_MODULES", "tests.processes.order_timeout")
    registry.process_managers.cache_clear()
    try:
        assert registry.process_managers() == {
            "settlement": settlement.process,
            "order-timeout": order_timeout.process,
        }
        assert order_timeout.process.contexts == ("orders",)
    finally:
        registry.process_managers.cache_clear()


def test_the_settlement_process_is_built_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STREAMS_PROCESS_MODULES", raising=False)
    registry.process_managers.cache_clear()
    try:
        assert registry.process_managers()["settlement"] is settlement.process
        assert set(settlement.process.contexts) <= {"games", "wallet"}  # a games,wallet worker runs it
    finally:
        registry.process_managers.cache_clear()


def test_a_module_whose_process_is_not_a_process_manager_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMS_PROCESS_MODULES", "tests.unit.processes.test_registry")
    registry.process_managers.cache_clear()
    try:
        with pytest.raises(TypeError, match="not a ProcessManager"):
            registry.process_managers()
    finally:
        registry.process_managers.cache_clear()
