"""The window stage's intake, without Kafka: raw readings and table events in, a decided batch out.

Records are real `confluent_kafka.Message`s built in memory; the committed state is a dict that
a test commits batches into, as the stage does after its transaction.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from typing import Any

import orjson
from confluent_kafka import Message

from streams.contexts.devices import (
    DeviceDecommissioned,
    DeviceRegistered,
    MarkDeviceSilent,
    RecordTelemetryWindow,
    TelemetryReading,
    context,
)
from streams.contexts.devices.telemetry import TELEMETRY
from streams.core.decider import BoundedContext
from streams.core.windows import WindowSpec, fold_windows, window_command_id
from streams.kafka.runtime import ContextRuntime
from streams.windows.intake import WindowBatch, WindowIntake
from streams.windows.state import NO_TIME, STREAM_TIME, decode_value, time_bytes
from streams.wire import headers as h
from streams.wire.topics import partition_for

RUNTIME = ContextRuntime.offline(context, prefix="t.")
CODEC = RUNTIME.codec
TOPICS = RUNTIME.topics
RAW = TOPICS.window_input("telemetry")
P = 4
T0 = 1_767_225_600_000  # a window boundary
SIZE, GRACE = TELEMETRY.spec.size_ms, TELEMETRY.spec.grace_ms
CREATE_TIME, LOG_APPEND_TIME = 1, 2
"""Kafka timestamp types: raw topics are declared LogAppendTime, so records carry the broker's clock."""


class DictState:
    """Committed state in dicts (a `WindowReader`), with `commit` standing for the transaction."""

    def __init__(self) -> None:
        self.data: dict[int, dict[bytes, bytes]] = defaultdict(dict)

    def __contains__(self, partition: object) -> bool:
        return isinstance(partition, int) and 0 <= partition < P

    def decoded(self, partition: int, key: bytes) -> Any:
        raw = self.data[partition].get(key)
        return None if raw is None else decode_value(key, raw)

    def scan_until(self, partition: int, prefix: bytes, upper: int) -> list[bytes]:
        bound = prefix + time_bytes(upper)
        return [k for k in sorted(self.data[partition]) if k.startswith(prefix) and k[: len(bound)] <= bound]

    def stream_time(self, partition: int) -> int:
        value = self.decoded(partition, STREAM_TIME)
        return NO_TIME if value is None else int(value)

    def commit(self, batch: WindowBatch) -> WindowBatch:
        for partition, writes in batch.writes.items():
            for key, value in writes.items():
                if value is None:
                    self.data[partition].pop(key, None)
                else:
                    self.data[partition][key] = value
        return batch


def intake(aggregation: Any = TELEMETRY, ctx: BoundedContext[Any] = context) -> WindowIntake:
    return WindowIntake(ctx, aggregation, CODEC, TOPICS, P, max_record_bytes=1000)


class Feed:
    """Offsets per (topic, partition), so every record is a new one."""

    def __init__(self) -> None:
        self.offsets: dict[tuple[str, int], int] = defaultdict(int)

    def message(
        self, topic: str, key: bytes | None, value: bytes | None, *, partition: int | None = None,
        headers: list[tuple[str, bytes]] | None = None, ts: int = T0, ts_type: int = LOG_APPEND_TIME,
    ) -> Message:  # fmt: skip
        if partition is None:
            partition = partition_for(key or b"", P)
        offset = self.offsets[(topic, partition)]
        self.offsets[(topic, partition)] += 1
        return Message(
            topic=topic, partition=partition, offset=offset, key=key, value=value,
            headers=headers or [], timestamp=(ts_type, ts),
        )  # fmt: skip

    def reading(self, device: str, value: float, ts: int, metric: str = "temp", **kw: Any) -> Message:
        raw = CODEC.encode(TelemetryReading(metric, value, ts))
        return self.message(RAW, device.encode(), raw, ts=kw.pop("record_ts", ts), **kw)

    def event(self, device: str, event: Any, version: int) -> Message:
        headers = [
            (h.EVENT_TYPE, type(event).__name__.encode()),
            (h.AGGREGATE_VERSION, str(version).encode()),
        ]
        return self.message(TOPICS.events, device.encode(), CODEC.encode(event), headers=headers)

    def registered(self, *devices: str, silence_s: int = 60) -> list[Message]:
        return [self.event(d, DeviceRegistered("plant-1", d, silence_s), 1) for d in devices]


def decide(
    state: DictState, messages: list[Message], now: int = T0, through: WindowIntake | None = None
) -> WindowBatch:
    return state.commit((through or intake()).decide(messages, state, state, now))


def commands(batch: WindowBatch) -> list[Any]:
    return [CODEC.decode(c.value).message for c in batch.commands]


def reasons(batch: WindowBatch) -> list[str]:
    return [h.as_dict(letter.headers)[h.DLQ_REASON] for _, letter in batch.letters]


def test_readings_fold_into_a_window_that_closes_once_stream_time_passes_end_plus_grace() -> None:
    state, feed = DictState(), Feed()
    decide(state, feed.registered("dev-1"))
    values = [20.0, 25.5, 19.0, 30.0]
    batch = decide(state, [feed.reading("dev-1", v, T0 + 1000 * i) for i, v in enumerate(values)])
    assert batch.outcomes["folded"] == 4 and batch.commands == []
    # a reading at end + grace - 1 keeps the window open; one at end + grace closes it
    assert decide(state, [feed.reading("dev-1", 1.0, T0 + SIZE + GRACE - 1)]).commands == []
    batch = decide(state, [feed.reading("dev-1", 2.0, T0 + SIZE + GRACE)])
    assert commands(batch) == [
        RecordTelemetryWindow("dev-1", "temp", T0, T0 + SIZE, 4, sum(values), 19.0, 30.0, T0 + 3000)
    ]
    command = batch.commands[0]
    assert (
        command.command_id
        == window_command_id("telemetry", "dev-1", "temp", T0)
        == f"w:telemetry:dev-1:temp:{T0}"
    )
    assert command.partition == partition_for(b"dev-1", P) and command.key == b"dev-1"
    assert batch.closed["stream_time"] == 1
    assert h.as_dict(command.headers)[h.COMMAND_ID] == command.command_id


def test_windows_are_per_key_and_group_and_close_in_time_order() -> None:
    state, feed = DictState(), Feed()
    devices = [f"dev-{i}" for i in range(20)]
    decide(state, feed.registered(*devices))
    readings = [(d, m, T0 + 500 * i) for i, d in enumerate(devices) for m in ("temp", "hum")]
    decide(state, [feed.reading(d, 1.0, ts, metric=m) for d, m, ts in readings])
    # one late-enough reading per partition closes that partition's windows
    closers = {partition_for(d.encode(), P): d for d in devices}
    batch = decide(state, [feed.reading(d, 1.0, T0 + 3 * SIZE) for d in closers.values()])
    emitted = commands(batch)
    assert len(emitted) == 40 and {(c.device_id, c.metric) for c in emitted} == {
        (d, m) for d, m, _ in readings
    }
    for partition in range(P):
        ends = [
            c.window_end for c, p in zip(emitted, batch.commands, strict=True) if p.partition == partition
        ]
        assert ends == sorted(ends)


def test_a_late_reading_goes_to_the_late_dlq_and_is_counted() -> None:
    state, feed = DictState(), Feed()
    decide(state, feed.registered("dev-1"))
    decide(state, [feed.reading("dev-1", 1.0, T0 + 1000), feed.reading("dev-1", 1.0, T0 + SIZE + GRACE + 5)])
    batch = decide(state, [feed.reading("dev-1", 99.0, T0 + 2000)])  # its window closed already
    assert batch.outcomes == {"late": 1} and batch.commands == []
    topic, letter = batch.letters[0]
    assert topic == TOPICS.window_late("telemetry")
    headers = h.as_dict(letter.headers)
    assert headers[h.DLQ_REASON] == "late_record" and headers["late_windows"] == f"{T0}-{T0 + SIZE}"
    # a reading of the still open next window is on time
    assert decide(state, [feed.reading("dev-1", 1.0, T0 + SIZE + 1)]).outcomes == {"folded": 1}


def test_bad_readings_are_dead_lettered_with_their_reason_and_the_batch_goes_on() -> None:
    state, feed = DictState(), Feed()
    decide(state, [*feed.registered("dev-1", "dev-2"), feed.event("dev-2", DeviceDecommissioned("x"), 2)])
    home = partition_for(b"dev-1", P)
    bad = [
        feed.message(RAW, None, CODEC.encode(TelemetryReading("temp", 1.0, T0)), partition=0),
        feed.reading("ghost", 1.0, T0),
        feed.reading("dev-2", 1.0, T0),
        feed.message(RAW, b"dev-1", b'{"metric": "temp", "value": "hot", "ts": 1767225600000}'),
        feed.message(RAW, b"dev-1", b'{"metric": "temp", "value": true, "ts": 1767225600000}'),
        feed.reading("dev-1", float("nan"), T0),
        feed.reading("dev-1", float("inf"), T0),
        feed.reading("dev-1", 1.0, T0 + 3_600_000, record_ts=T0),
        feed.reading("dev-1", 1.0, T0 - 8 * 24 * 3_600_000, record_ts=T0),
        feed.message(RAW, b"dev-1", b"\x00\x00\x00\x00\x63garbage"),
        feed.message(RAW, b"dev-1", b"not json, not avro"),
        feed.message(RAW, b"dev-1", b"x" * 1001),
        feed.message(RAW, b"dev\x01", CODEC.encode(TelemetryReading("temp", 1.0, T0)), partition=home),
        feed.message(RAW, b"dev-1", b'{"metric": "temp", "value": 1.5}'),
        feed.message(RAW, b"dev-1", CODEC.encode(TelemetryReading("t" * 65, 1.0, T0))),
        feed.message(RAW, b"dev-1", CODEC.encode(TelemetryReading("te\x01mp", 1.0, T0))),
        feed.message(RAW, b"dev-1", CODEC.encode(DeviceRegistered("s", "n", 60))),
    ]
    good = feed.message(RAW, b"dev-1", b'{"metric": "temp", "value": 21, "ts": 1767225600500, "unit": "C"}')
    batch = decide(state, [*bad, good])
    assert reasons(batch) == [
        "missing_key", "unknown_device", "decommissioned_device", "non_numeric_value", "non_numeric_value",
        "non_numeric_value", "non_numeric_value", "timestamp_in_future", "timestamp_too_old",
        "unknown_schema", "malformed_record", "oversized_record", "invalid_identifier", "invalid_field",
        "invalid_field", "invalid_field", "unknown_type",
    ]  # fmt: skip
    assert all(topic == TOPICS.window_dlq("telemetry") for topic, _ in batch.letters)
    assert batch.outcomes["folded"] == 1
    letter = batch.letters[1][1]
    assert letter.key == b"ghost" and letter.value == bad[1].value()
    assert h.as_dict(letter.headers)["dlq_stage"] == "windows"
    # every record's offset is committed, refused or not
    assert sum(1 for (topic, _), _ in batch.offsets.items() if topic == RAW) >= 1


def test_a_reading_in_the_wrong_partition_is_produced_again_to_its_keys_partition() -> None:
    state, feed = DictState(), Feed()
    decide(state, feed.registered("dev-1"))
    wrong = (partition_for(b"dev-1", P) + 1) % P
    batch = decide(state, [feed.reading("dev-1", 1.0, T0, partition=wrong)])
    assert batch.outcomes == {"rerouted": 1} and not batch.letters
    assert batch.reroutes[0].partition == partition_for(b"dev-1", P) and batch.reroutes[0].timestamp == T0


def test_a_hot_key_is_accepted_into_one_window_without_holding_the_others_back() -> None:
    state, feed = DictState(), Feed()
    decide(state, feed.registered("hot", "cold"))
    burst = [feed.reading("hot", float(i % 100), T0 + i % SIZE) for i in range(10_000)]
    batch = decide(state, [*burst, feed.reading("cold", 5.0, T0 + 1)])
    assert batch.outcomes == {"folded": 10_001}
    # one stored window per key however many readings: state does not grow with the burst
    assert sum(1 for k in batch.writes[partition_for(b"hot", P)] if k.startswith(b"w:")) >= 1
    closing = [feed.reading(d, 0.0, T0 + SIZE + GRACE) for d in ("hot", "cold")]
    emitted = {c.device_id: c for c in commands(decide(state, closing))}
    assert emitted["hot"].count == 10_000 and emitted["hot"].max == 99.0 and emitted["cold"].count == 1


def test_the_idle_flush_closes_the_windows_of_a_quiet_partition() -> None:
    state, feed = DictState(), Feed()
    decide(state, feed.registered("dev-1"))
    decide(state, [feed.reading("dev-1", 7.0, T0 + 100)])
    partition = partition_for(b"dev-1", P)
    run = intake()
    assert state.commit(run.advance({partition: T0 + SIZE + GRACE - 1}, state, T0)).commands == []
    batch = state.commit(run.advance({partition: T0 + SIZE + GRACE}, state, T0))
    assert [c.count for c in commands(batch)] == [1] and batch.closed == {"idle": 1}
    assert state.stream_time(partition) == T0 + SIZE + GRACE


def test_a_device_silent_for_its_silence_time_is_marked_silent_once() -> None:
    state, feed = DictState(), Feed()
    decide(state, feed.registered("dev-1", silence_s=60))
    writes = []
    for i in range(25):  # one reading a second: the timer moves once per 10 s hop, not per reading
        batch = decide(state, [feed.reading("dev-1", 1.0, T0 + 1000 * i)])
        writes.append(sum(1 for k in batch.writes[partition_for(b"dev-1", P)] if k.startswith(b"h:")))
    assert sum(writes) <= 2 * 3 + 1  # created, then moved at most twice (each move: delete + put)
    partition = partition_for(b"dev-1", P)
    run = intake()
    last = T0 + 24_000
    assert not [c for c in commands(state.commit(run.advance({partition: last + 59_000}, state, T0))) if
                isinstance(c, MarkDeviceSilent)]  # fmt: skip
    batch = state.commit(run.advance({partition: last + 70_000}, state, T0))
    silent = [c for c in commands(batch) if isinstance(c, MarkDeviceSilent)]
    assert len(silent) == 1 and last <= silent[0].last_seen_ms < last + 10_000
    assert batch.fired == 1
    assert not commands(state.commit(run.advance({partition: last + 200_000}, state, T0)))


def test_table_events_are_idempotent_by_version_and_decommissioning_refuses_readings() -> None:
    state, feed = DictState(), Feed()
    decide(state, feed.registered("dev-1"))
    decide(state, [feed.event("dev-1", DeviceDecommissioned("x"), 2)])
    replayed = decide(state, feed.registered("dev-1"))  # version 1 again: skipped
    assert replayed.outcomes == {} and not replayed.writes
    assert reasons(decide(state, [feed.reading("dev-1", 1.0, T0)])) == ["decommissioned_device"]


def test_deciding_the_same_records_again_after_an_abort_gives_the_same_batch() -> None:
    state, feed = DictState(), Feed()
    decide(state, feed.registered("dev-1", "dev-2"))
    decide(state, [feed.reading("dev-1", 3.0, T0), feed.reading("dev-2", 4.0, T0 + 5)])
    messages = [feed.reading("dev-1", 5.0, T0 + SIZE + GRACE), feed.reading("dev-2", 5.0, T0 + SIZE + GRACE)]
    first = intake().decide(messages, state, state, T0)  # aborted: never committed
    second = intake().decide(messages, state, state, T0)
    assert [(c.command_id, c.value) for c in first.commands] == [
        (c.command_id, c.value) for c in second.commands
    ]
    assert first.writes == second.writes


def test_hopping_windows_fold_a_reading_into_each_window_it_falls_in() -> None:
    hopping = replace(TELEMETRY, spec=WindowSpec(size_ms=10_000, advance_ms=5_000, grace_ms=0))
    state, feed = DictState(), Feed()
    decide(state, feed.registered("dev-1"), through=intake(hopping))
    decide(state, [feed.reading("dev-1", 4.0, T0 + 7_000)], through=intake(hopping))
    batch = decide(state, [feed.reading("dev-1", 1.0, T0 + 20_000)], through=intake(hopping))
    assert [(c.window_start, c.count) for c in commands(batch)] == [(T0, 1), (T0 + 5_000, 1)]
    # the reference fold agrees
    reference = fold_windows(hopping, [("dev-1", TelemetryReading("temp", 4.0, T0 + 7_000))])
    assert sorted(start for _, _, start in reference) == [T0, T0 + 5_000]


def test_a_close_function_that_raises_dead_letters_the_window_and_goes_on() -> None:
    def broken(window: Any) -> Any:
        raise ValueError("bug")

    state, feed = DictState(), Feed()
    faulty = replace(TELEMETRY, close=broken)
    decide(state, feed.registered("dev-1"), through=intake(faulty))
    decide(state, [feed.reading("dev-1", 4.0, T0)], through=intake(faulty))
    batch = decide(state, [feed.reading("dev-1", 1.0, T0 + SIZE + GRACE)], through=intake(faulty))
    assert reasons(batch) == ["close_failed"] and batch.commands == []
    assert orjson.loads(batch.letters[0][1].value or b"{}")["accumulator"]["n"] == 1


def test_a_pass_closes_at_most_max_closes_windows_and_drain_closes_the_rest() -> None:
    state, feed = DictState(), Feed()
    devices = [f"d{i}" for i in range(40)]
    decide(state, feed.registered(*devices))
    capped = replace_intake(max_closes=5)
    decide(state, [feed.reading(d, 1.0, T0) for d in devices], through=capped)
    partition = partition_for(b"d0", P)
    mine = [d for d in devices if partition_for(d.encode(), P) == partition]
    batch = decide(state, [feed.reading("d0", 1.0, T0 + SIZE + GRACE)], through=capped)
    emitted = len(batch.commands)
    assert emitted <= 5 and partition in batch.more
    while batch.more:
        batch = state.commit(capped.drain(sorted(batch.more), state, T0))
        assert len(batch.commands) <= 5
        emitted += len(batch.commands)
    assert emitted == len(mine)  # every window of the partition whose stream time moved


def test_a_window_whose_state_outgrows_the_changelog_limit_is_dead_lettered_not_stuck() -> None:
    def hoard(acc: Any, record: Any) -> Any:
        return {"values": [*(acc or {}).get("values", []), record.value] * 2}

    state, feed = DictState(), Feed()
    greedy = replace(TELEMETRY, fold=hoard)
    small = WindowIntake(context, greedy, CODEC, TOPICS, P, max_record_bytes=1000, max_value_bytes=2000)
    decide(state, feed.registered("dev-1"), through=small)
    batch = decide(state, [feed.reading("dev-1", float(i), T0 + i) for i in range(20)], through=small)
    assert reasons(batch) == ["window_too_large"] and batch.outcomes["folded"] == 20
    assert not any(
        k.startswith(b"w:") and v is not None for k, v in batch.writes[partition_for(b"dev-1", P)].items()
    )


def replace_intake(**kw: Any) -> WindowIntake:
    return WindowIntake(context, TELEMETRY, CODEC, TOPICS, P, max_record_bytes=1000, **kw)
