"""`telemetry-10s` in PostgreSQL: window rows upserted by the JDBC sink, read through the typed
`telemetry_10s` view beside the seed's tables (connectors/sql/002_telemetry.sql)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from streams.config import Settings
from streams.sinks.connect import deploy
from tests.conftest import StackEndpoints
from tests.integration.sinks.kit import PrivateConnect, query, sink_settings
from tests.integration.windows.fleet import WINDOW_MS, Fleet, aligned_past
from tests.integration.workers import Deployment, deployed, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def deployment(stack: StackEndpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    worker = tmp_path_factory.mktemp("worker")
    with deployed(worker, "tsink", STREAMS_CONTEXTS="devices", STREAMS_SINK_VIEWS="telemetry-10s") as dep:
        yield dep


@pytest.fixture(scope="module")
def settings(deployment: Deployment, connect: PrivateConnect) -> Iterator[Settings]:
    with sink_settings(deployment, connect, contexts=("devices",), sink_views=("telemetry-10s",)) as s:
        yield s


def test_window_rows_reach_postgresql_as_a_typed_time_series(
    settings: Settings, deployment: Deployment
) -> None:
    assert deploy(settings, ("devices",))
    fleet = Fleet(settings, deployment.url())
    run = uuid.uuid4().hex[:6]
    devices = [f"pg{run}-{i}" for i in range(3)]
    fleet.register(devices)
    t0 = aligned_past(300)
    fleet.send(
        [(d, "temp", 20.0 + i + s % 4, t0 + s * 1000) for s in range(30) for i, d in enumerate(devices)]
    )
    fleet.wait_windows(devices, 9)

    def rows() -> list[tuple[Any, ...]] | None:
        found = query(
            settings,
            "SELECT device_id, metric, window_start, window_end, count, min, max, mean "
            "FROM {s}.telemetry_10s WHERE device_id LIKE %s ORDER BY device_id, window_start",
            f"pg{run}-%",
        )
        return found if len(found) == 9 else None

    found = wait_until(rows, "9 rows in telemetry_10s", timeout=180, every=2)
    first = found[0]
    start = datetime.fromtimestamp(t0 / 1000, UTC)
    assert first[:5] == (devices[0], "temp", start, datetime.fromtimestamp((t0 + WINDOW_MS) / 1000, UTC), 10)
    assert (first[5], first[6]) == (20.0, 23.0) and first[7] == pytest.approx(21.3)
    # one row per device, metric and window: an upsert, never a duplicate
    (total,) = query(
        settings,
        "SELECT count(*) FROM {s}.genericreadmodel "
        "WHERE entitytype = 'devices.telemetry-10s' AND entityid LIKE %s",
        f"pg{run}-%",
    )[0]
    assert total == 9
