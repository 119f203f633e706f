"""Reading raw records: Confluent Avro through the codec, or JSON checked against the schema."""

from __future__ import annotations

import pytest

from streams.contexts.devices import TelemetryReading, context
from streams.core.windows import BadRecord
from streams.kafka.runtime import ContextRuntime
from streams.windows.records import RecordDecoder

CODEC = ContextRuntime.offline(context).codec
DECODER = RecordDecoder(CODEC, TelemetryReading)


def reason(value: bytes | None) -> str:
    with pytest.raises(BadRecord) as caught:
        DECODER.decode(value)
    return caught.value.reason


def test_avro_and_json_readings_decode_to_the_same_record() -> None:
    reading = TelemetryReading("temp", 21.5, 1_767_225_600_000)
    assert DECODER.decode(CODEC.encode(reading)) == reading
    assert DECODER.decode(b' {"metric": "temp", "value": 21.5, "ts": 1767225600000}') == reading
    # an integer where the schema has a double is a number; unknown fields are the gateway's
    assert DECODER.decode(b'{"metric": "t", "value": 21, "ts": 1.0e3, "unit": "C"}') == TelemetryReading(
        "t", 21.0, 1000
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"metric": "temp", "value": "21.5", "ts": 1}', "non_numeric_value"),
        (b'{"metric": "temp", "value": null, "ts": 1}', "non_numeric_value"),
        (b'{"metric": "temp", "value": false, "ts": 1}', "non_numeric_value"),
        (b'{"metric": "temp", "value": [1], "ts": 1}', "non_numeric_value"),
        (b'{"metric": "temp", "value": 1, "ts": "2026-01-01T00:00:00Z"}', "non_numeric_value"),
        (b'{"metric": "temp", "value": 1, "ts": 1.5}', "invalid_field"),
        (b'{"metric": "temp", "value": 1, "ts": 1e30}', "invalid_field"),
        (b'{"metric": 7, "value": 1, "ts": 1}', "invalid_field"),
        (b'{"value": 1, "ts": 1}', "invalid_field"),
        (b'{"metric": "temp", "value": 1, "ts": 1', "malformed_record"),
        (b"[1, 2]", "malformed_record"),
        (b"", "malformed_record"),
        (None, "malformed_record"),
        (b"\x00\x00\x00\x03\xe7abc", "unknown_schema"),
    ],
)
def test_bad_records_have_a_reason(raw: bytes | None, expected: str) -> None:
    assert reason(raw) == expected


def test_a_string_over_its_max_length_is_an_invalid_field() -> None:
    assert reason(CODEC.encode(TelemetryReading("m" * 65, 1.0, 1))) == "invalid_field"
    assert reason(b'{"metric": "' + b"m" * 65 + b'", "value": 1, "ts": 1}') == "invalid_field"
