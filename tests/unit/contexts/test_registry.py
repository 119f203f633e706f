"""Finding the installed contexts: built in, by entry point, by STREAMS_CONTEXT_MODULES."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.contexts import orders, registry


@pytest.fixture(autouse=True)
def fresh_registry() -> Iterator[None]:
    registry.contexts.cache_clear()
    yield
    registry.contexts.cache_clear()


def test_the_built_in_contexts_are_known_without_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STREAMS_CONTEXT_MODULES", raising=False)
    assert registry.get_context("orders") is orders.context
    with pytest.raises(KeyError, match="unknown context 'casino'; known: orders"):
        registry.get_context("casino")


def test_a_context_in_another_package_loads_through_its_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "acme_billing"
    package.mkdir()
    (package / "__init__.py").write_text(
        "from dataclasses import replace\n"
        "from streams.contexts.orders import context as _orders\n"
        "context = replace(_orders, name='billing')\n"
    )
    dist = tmp_path / "acme_billing-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-billing\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[streams.contexts]\nbilling = acme_billing:context\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert registry.get_context("billing").name == "billing"
    assert "orders" in registry.contexts()


def test_a_module_named_in_the_environment_replaces_a_context_of_the_same_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STREAMS_CONTEXT_MODULES", "tests.integration.fussy_orders")
    fussy = registry.get_context("orders")
    assert fussy is not orders.context and {v.name for v in fussy.views} >= {"fussy", "fussy-keyed"}


def test_a_module_whose_context_is_not_a_bounded_context_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "not_a_context.py").write_text("context = 'orders'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("STREAMS_CONTEXT_MODULES", "not_a_context")
    with pytest.raises(TypeError, match=r"not_a_context\.context is a str, not a BoundedContext"):
        registry.contexts()
