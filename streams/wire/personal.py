"""Personal fields declared in a schema, and their plan: sealing on write, opening on read.

A field is personal when its schema says so::

    {"name": "customer_email", "type": ["null", "bytes"], "default": null,
     "streams.pii": true, "streams.subject": "customer_id", "confluent:tags": ["PII"]}

On the wire it is `bytes`: the field's value (JSON-encoded, so any type) sealed under the data
key of the subject the record's `streams.subject` field names (`streams.privacy.cipher`), bound to
the subject, the record type and the field. The classes keep the plain type (`str | None`), so
`decide`, `evolve` and views see plain values; a field whose subject was forgotten reads as its
`streams.erased` value (default null). `streams.subject` may also be set on the record, for all
its personal fields. A null value stays null (there is nothing to seal).

The plan is computed once per schema (`personal_plan`); a schema without personal fields has
none, and its records take the codec's path untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from streams.privacy.cipher import binding, key_id_of, open_sealed, seal
from streams.privacy.keys import Keyring

PII = "streams.pii"
SUBJECT = "streams.subject"
ERASED = "streams.erased"
TAGS = "confluent:tags"

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


class PersonalSchemaError(ValueError):
    """A schema declares a personal field it cannot seal (wrong type, no subject field)."""


@dataclass(frozen=True, slots=True)
class PersonalField:
    """One personal field: its name, the field naming its subject, and its replacement."""

    name: str
    subject_field: str
    erased: Any

    def seal(self, type_name: str, subject: str, value: Any, keyring: Keyring) -> bytes:
        """`value` (not None) sealed under `subject`'s key, bound to the subject, `type_name` and
        this field."""
        key = keyring.for_write(subject)
        return seal(key, _encode(value), binding(subject, type_name, self.name))

    def open(self, type_name: str, subject: str, sealed: bytes, keyring: Keyring) -> tuple[Any, bool]:
        """(the value, False), or (the replacement, True) when the subject's key is gone. Raises
        `MalformedCiphertext` or `TamperedCiphertext` (`streams.privacy.errors`)."""
        key = keyring.for_read(subject, key_id_of(sealed))
        if key is None:
            return self.erased, True
        return _decode(open_sealed(key, sealed, binding(subject, type_name, self.name))), False


@dataclass(frozen=True, slots=True)
class PersonalPlan:
    """The personal fields of one record type."""

    type_name: str
    fields: tuple[PersonalField, ...]

    @property
    def subject_fields(self) -> tuple[str, ...]:
        """The fields naming subjects (each must be present and a string)."""
        return tuple(dict.fromkeys(f.subject_field for f in self.fields))

    def seal(self, record: dict[str, Any], keyring: Callable[[], Keyring]) -> dict[str, Any]:
        """A copy of a plain record with its personal fields sealed (`keyring` is asked for only
        when a personal field holds a value)."""
        out = dict(record)
        for f in self.fields:
            value = out.get(f.name)
            if value is None:
                continue
            out[f.name] = f.seal(self.type_name, out[f.subject_field], value, keyring())
        return out

    def open(self, record: dict[str, Any], keyring: Callable[[], Keyring]) -> tuple[str, ...]:
        """Open the record's personal fields in place (`erased` where the subject's key is
        gone); the names of the fields erased so. `keyring` is asked for only when a personal
        field holds a value. Raises `MalformedCiphertext` or `TamperedCiphertext`
        (`streams.privacy.errors`)."""
        erased: list[str] = []
        for f in self.fields:
            sealed = record.get(f.name)
            if sealed is None:
                continue
            record[f.name], gone = f.open(self.type_name, record[f.subject_field], sealed, keyring())
            if gone:
                erased.append(f.name)
        return tuple(erased)

    def erase(self, record: dict[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
        """The record with every personal field that holds a value replaced, unopened (what a
        forgotten subject reads as), and the names of those fields."""
        names = tuple(f.name for f in self.fields if record.get(f.name) is not None)
        return {**record, **{f.name: f.erased for f in self.fields if f.name in names}}, names


def plain_type(field: dict[str, Any]) -> Any:
    """A field's Avro type as its message holds it: a personal field's `bytes` read as `string`
    (what JSON input and the API document show); other fields' types unchanged."""
    avro_type = field["type"]
    if not field.get(PII):
        return avro_type
    if isinstance(avro_type, list):
        return ["string" if t == "bytes" else t for t in avro_type]
    return "string" if avro_type == "bytes" else avro_type


def _is_bytes(avro_type: Any) -> bool:
    if avro_type == "bytes":
        return True
    return isinstance(avro_type, list) and sorted(map(str, avro_type)) == ["bytes", "null"]


def personal_plan(type_name: str, schema: dict[str, Any]) -> PersonalPlan | None:
    """The plan of a record schema (None: no personal fields). Raises `PersonalSchemaError`."""
    fields = schema.get("fields", [])
    by_name = {f["name"]: f for f in fields}
    found = []
    for f in fields:
        if not f.get(PII):
            continue
        where = f"{schema.get('name')}.{f['name']}"
        if not _is_bytes(f["type"]):
            raise PersonalSchemaError(
                f'{where}: a personal field is `bytes` or ["null", "bytes"] on the wire'
            )
        subject = f.get(SUBJECT, schema.get(SUBJECT))
        if not subject or subject not in by_name:
            raise PersonalSchemaError(f"{where}: `{SUBJECT}` must name a field of the record ({subject!r})")
        if by_name[subject].get(PII) or by_name[subject]["type"] != "string":
            raise PersonalSchemaError(f"{where}: the subject field {subject!r} must be a plain `string`")
        found.append(PersonalField(f["name"], subject, f.get(ERASED)))
    return PersonalPlan(type_name, tuple(found)) if found else None
