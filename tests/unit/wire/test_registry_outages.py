"""How the codec reads the registry's answers about another producer's schema id around an
outage (no Kafka; the registry's answers are scripted, the codec is the real one)."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka.schema_registry.error import SchemaRegistryError

from streams.contexts.orders import context as orders
from streams.wire.codec import AvroCodec, RegistryUnavailable, UnknownSchema
from streams.wire.schemas import catalog_for

OTHER_ID = 4242
RECORD = b"\x00" + OTHER_ID.to_bytes(4, "big") + b"\x02c\x06EUR"


class ScriptedRegistry:
    """Answers `get_schema` with the next scripted outcome (an exception to raise)."""

    def __init__(self, *answers: Exception) -> None:
        self.answers = list(answers)

    def get_schema(self, schema_id: int) -> Any:
        raise self.answers.pop(0)


def not_found() -> SchemaRegistryError:
    return SchemaRegistryError(404, 40403, "Schema not found")


def codec(*answers: Exception) -> AvroCodec:
    return AvroCodec(catalog_for(orders), ScriptedRegistry(*answers))  # type: ignore[arg-type]


def test_a_404_from_a_registry_never_seen_down_is_a_verdict_on_the_record() -> None:
    with pytest.raises(UnknownSchema):
        codec(not_found()).decode(RECORD)


def test_a_404_soon_after_an_outage_is_retried_not_dead_lettered() -> None:
    made = codec(ConnectionError("refused"), not_found(), not_found())
    with pytest.raises(RegistryUnavailable):
        made.decode(RECORD)  # down
    with pytest.raises(RegistryUnavailable, match="within 90 s of an outage"):
        made.decode(RECORD)  # back, but perhaps still replaying its journal
    made.settle_s = 0.0  # the settling time has passed
    with pytest.raises(UnknownSchema):
        made.decode(RECORD)
