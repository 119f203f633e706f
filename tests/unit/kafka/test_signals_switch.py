"""`STREAMS_SIGNALS=0` turns off the signals that cost on the hot paths: librdkafka's statistics
of the group members, RocksDB's statistics of the stores and the commit-time histogram."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from streams.config import Settings
from streams.kafka import clients
from streams.kafka.store import PartitionStore
from streams.kafka.transaction import TransactionalSession


def consumer_config(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(clients, "Consumer", lambda config: seen.update(config))
    clients.group_consumer(settings, "g")
    return seen


def test_group_members_report_statistics_only_with_the_signals_on(monkeypatch: pytest.MonkeyPatch) -> None:
    on = consumer_config(monkeypatch, replace(Settings(), signals=True))
    assert on["statistics.interval.ms"] > 0 and callable(on["stats_cb"])
    off = consumer_config(monkeypatch, replace(Settings(), signals=False))
    assert "statistics.interval.ms" not in off and "stats_cb" not in off


def test_rocksdb_statistics_follow_both_switches(tmp_path: Path) -> None:
    assert Settings().rocksdb_statistics_on  # the default: on
    assert not replace(Settings(), signals=False).rocksdb_statistics_on
    assert not replace(Settings(), rocksdb_statistics=False).rocksdb_statistics_on
    for statistics, counted in ((True, True), (False, False)):
        store = PartitionStore(tmp_path / f"s{statistics}", statistics)
        store.write({b"k%d" % n: b"v" * 100 for n in range(2000)}, {"t": 2000})
        store.compact()  # SST files, read back through the block cache
        for n in range(2000):
            store.get(b"k%d" % n)
        assert (sum(store.cache_counts()) > 0) is counted
        store.close()


def test_the_commit_histogram_series_is_looked_up_once_and_not_with_the_signals_off() -> None:
    args = {"group_id": "g", "transactional_id": "t"}
    assert TransactionalSession(replace(Settings(), signals=True), "x", **args)._commit_seconds is not None
    assert TransactionalSession(replace(Settings(), signals=False), "x", **args)._commit_seconds is None
