"""The codec's personal-field path: sealing records on write, opening or erasing them on read.

`streams.wire.codec.AvroCodec` owns the wire format and the read plans; for a type whose schema
declares personal fields (`streams.wire.personal`) it hands the record to this module: on write
the plain record is sealed with the keyring and encoded from its dict form (`SealedWriter`), on
read the decoded record's sealed fields are opened or, for copies that cannot be shredded,
replaced unopened (`Sealing.open`). Types without personal fields never come here.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import fastavro
import msgspec

from streams.privacy.errors import MalformedCiphertext, NoMasterKey, TamperedCiphertext
from streams.privacy.keys import Keyring
from streams.wire.avro_compiled import Encoder
from streams.wire.codec_errors import MalformedField, TamperedField
from streams.wire.personal import PersonalPlan

__all__ = ["SealedWriter", "Sealing", "write_avro"]


def write_avro(header: bytes, parsed: Any, record: dict[str, Any]) -> bytes:
    """`header` followed by `record` in Avro binary with fastavro (the explaining slow path)."""
    out = io.BytesIO(header)
    out.seek(len(header))
    fastavro.schemaless_writer(out, parsed, record)
    return out.getvalue()


@dataclass(frozen=True)
class SealedWriter:
    """Writes the latest version of a type with personal fields, from its plain record form."""

    header: bytes
    parsed: Any
    """The latest version's parsed schema."""
    plan: PersonalPlan
    of_record: Encoder | None = None
    """Generated encoder of the record dict form (None: the schema is not compiled)."""

    def encode(self, record: dict[str, Any], keys: Callable[[], Keyring]) -> bytes:
        """The record with its personal fields sealed, in Confluent wire format."""
        sealed = self.plan.seal(record, keys)
        if self.of_record is not None:
            try:
                return self.of_record(sealed)
            except Exception:  # fastavro's path below decides and explains
                pass
        return write_avro(self.header, self.parsed, sealed)


class Sealing:
    """The keyring personal fields are sealed and opened with, built on first use."""

    def __init__(self, keyring: Keyring | Callable[[], Keyring] | None) -> None:
        self._keyring = keyring if isinstance(keyring, Keyring) else None
        self._factory = None if isinstance(keyring, Keyring) else keyring
        """Built on first use: a context whose records hold no personal value needs no keys."""

    @property
    def keyring(self) -> Keyring:
        """The keys (`NoMasterKey` when none is configured)."""
        if self._keyring is None:
            if self._factory is None:
                raise NoMasterKey("this codec has no keyring: it cannot seal or open personal fields")
            self._keyring = self._factory()
        return self._keyring

    def keys(self) -> Keyring:
        """The keyring, as the callable `PersonalPlan.seal`/`open` ask (only when a value needs it)."""
        return self.keyring

    def open(
        self, plan: PersonalPlan, schema_id: int, record: dict[str, Any], keep_personal: bool
    ) -> tuple[dict[str, Any], tuple[str, ...]]:
        """The decoded record with its personal fields opened (`keep_personal`) or replaced
        unopened, and the names of the fields read as their replacement. Raises `TamperedField`
        or `MalformedField`."""
        if not keep_personal:
            return plan.erase(record)
        try:
            return record, plan.open(record, self.keys)
        except TamperedCiphertext as exc:
            raise TamperedField(f"schema id {schema_id}: {plan.type_name}: {exc}") from exc
        except (MalformedCiphertext, KeyError, TypeError, ValueError, msgspec.DecodeError) as exc:
            raise MalformedField(
                f"schema id {schema_id}: {plan.type_name}: {type(exc).__name__}: {exc}"
            ) from exc
