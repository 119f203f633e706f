"""Window math and the windowed aggregation's declaration, without Kafka."""

from __future__ import annotations

import pytest

from streams.core.windows import MAX_COMMAND_ID, WindowSpec, heartbeat_command_id, window_command_id

T0 = 1_767_225_600_000


def test_tumbling_windows_are_aligned_to_the_epoch_and_half_open() -> None:
    spec = WindowSpec(size_ms=10_000)
    assert spec.tumbling and spec.hop_ms == 10_000
    assert spec.windows_of(T0) == [(T0, T0 + 10_000)]
    assert spec.windows_of(T0 + 9_999) == [(T0, T0 + 10_000)]
    assert spec.windows_of(T0 + 10_000) == [(T0 + 10_000, T0 + 20_000)]


def test_hopping_windows_hold_a_record_in_size_over_advance_windows() -> None:
    spec = WindowSpec(size_ms=10_000, advance_ms=5_000)
    assert spec.windows_of(T0 + 7_000) == [(T0, T0 + 10_000), (T0 + 5_000, T0 + 15_000)]
    assert spec.windows_of(T0 + 5_000) == [(T0, T0 + 10_000), (T0 + 5_000, T0 + 15_000)]
    assert spec.windows_of(T0 + 4_999) == [(T0 - 5_000, T0 + 5_000), (T0, T0 + 10_000)]
    uneven = WindowSpec(size_ms=10_000, advance_ms=3_000)
    for ts in range(T0, T0 + 20_000, 700):
        windows = uneven.windows_of(ts)
        assert all(start <= ts < end and start % 3_000 == 0 for start, end in windows)
        assert len(windows) in (3, 4)


def test_a_window_closes_at_its_end_plus_grace() -> None:
    spec = WindowSpec(size_ms=10_000, grace_ms=2_000)
    assert not spec.is_closed(T0 + 10_000, T0 + 11_999)
    assert spec.is_closed(T0 + 10_000, T0 + 12_000)


def test_nonsense_windows_are_refused() -> None:
    with pytest.raises(ValueError):
        WindowSpec(size_ms=0)
    with pytest.raises(ValueError):
        WindowSpec(size_ms=10, advance_ms=20)  # gaps between windows
    with pytest.raises(ValueError):
        WindowSpec(size_ms=10, grace_ms=-1)


def test_command_ids_are_deterministic_and_bounded() -> None:
    assert window_command_id("telemetry", "dev-1", "temp", T0) == f"w:telemetry:dev-1:temp:{T0}"
    assert heartbeat_command_id("telemetry", "dev-1", T0) == f"s:telemetry:dev-1:{T0}"
    long = window_command_id("telemetry", "d" * 255, "temp", T0)
    assert len(long) <= MAX_COMMAND_ID and long.startswith("w:sha256:")
    assert long == window_command_id("telemetry", "d" * 255, "temp", T0)
    assert long != window_command_id("telemetry", "d" * 255, "temp", T0 + 1)
