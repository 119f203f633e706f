"""Which clock the window stage trusts: one device's fast clock must not blind its partition.

The raw topic is stamped by the broker (`LogAppendTime`): a record's Kafka timestamp is when it
arrived, whatever the device claims. A record stamped by its producer (`CreateTime`, a topic
not declared as such) is judged against the consumer's wall clock instead.
"""

from __future__ import annotations

from streams.wire import headers as h
from streams.wire.topics import partition_for
from tests.unit.windows.test_intake import (
    CREATE_TIME,
    GRACE,
    SIZE,
    T0,
    DictState,
    Feed,
    commands,
    decide,
    reasons,
)

HOUR = 3_600_000


def same_partition(first: str, n: int, partitions: int = 4) -> list[str]:
    """`n` device ids on the partition of `first`."""
    home = partition_for(first.encode(), partitions)
    found, i = [], 0
    while len(found) < n:
        if partition_for(f"{first}-{i}".encode(), partitions) == home:
            found.append(f"{first}-{i}")
        i += 1
    return found


def test_a_device_clock_an_hour_fast_is_dead_lettered_and_its_partition_goes_on() -> None:
    state, feed = DictState(), Feed()
    others = same_partition("fast", 3)
    decide(state, feed.registered("fast", *others))
    # the producer stamps the record with its own (fast) clock: CreateTime says nothing trusted
    fast = feed.reading("fast", 1.0, T0 + HOUR, record_ts=T0 + HOUR, ts_type=CREATE_TIME)
    batch = decide(state, [fast], now=T0)
    assert reasons(batch) == ["timestamp_in_future"] and batch.outcomes.get("folded", 0) == 0
    # the other devices of its partition, on time, are folded and their windows close
    on_time = [feed.reading(d, 2.0, T0 + 1000 + i) for i, d in enumerate(others)]
    batch = decide(state, on_time, now=T0 + 1000)
    assert batch.outcomes == {"folded": 3} and not batch.letters
    closing = [feed.reading(d, 3.0, T0 + SIZE + GRACE) for d in others]
    emitted = commands(decide(state, closing, now=T0 + SIZE + GRACE))
    assert sorted((c.device_id, c.count) for c in emitted) == [(d, 1) for d in sorted(others)]


def test_a_reading_ahead_of_the_broker_clock_moves_stream_time_no_further_than_its_arrival() -> None:
    state, feed = DictState(), Feed()
    ahead, other = same_partition("ahead", 2)
    decide(state, feed.registered(ahead, other))
    # 4 minutes ahead of its arrival (within max_future_ms): accepted into its own window ...
    batch = decide(state, [feed.reading(ahead, 1.0, T0 + 240_000, record_ts=T0)])
    assert batch.outcomes == {"folded": 1}
    assert state.stream_time(partition_for(ahead.encode(), 4)) == T0
    # ... but it does not close the windows of a device of its partition sending on time
    batch = decide(state, [feed.reading(other, 2.0, T0 + 1000, record_ts=T0 + 1000)])
    assert batch.outcomes == {"folded": 1} and not batch.letters
    closing = decide(state, [feed.reading(other, 2.0, T0 + SIZE + GRACE)])
    assert [(c.device_id, c.count) for c in commands(closing)] == [(other, 1)]
    assert all(h.as_dict(x.headers)[h.DLQ_REASON] != "late_record" for _, x in closing.letters)


def test_a_metric_name_outside_the_device_types_allow_list_is_refused_at_intake() -> None:
    state, feed = DictState(), Feed()
    decide(state, feed.registered("dev-1"))
    invented = [feed.reading("dev-1", 1.0, T0 + i, metric=f"made-up-{i}") for i in range(50)]
    batch = decide(state, [*invented, feed.reading("dev-1", 1.0, T0 + 60, metric="temp")])
    assert reasons(batch) == ["unknown_metric"] * 50 and batch.outcomes["folded"] == 1
    detail = h.as_dict(batch.letters[0][1].headers)[h.DLQ_DETAIL]
    assert "made-up-0" in detail and "sensor" in detail
    # no window was opened for them, so no system command can carry them to the decider
    windows = [k for k in batch.writes[partition_for(b"dev-1", 4)] if k.startswith(b"w:")]
    assert len(windows) == 1 and b"temp" in windows[0]
    closing = decide(state, [feed.reading("dev-1", 1.0, T0 + SIZE + GRACE)])
    assert [c.metric for c in commands(closing)] == ["temp"]
