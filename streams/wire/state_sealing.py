"""Personal fields of the write side's state: sealed in its RocksDB rows and its changelog.

A state class (or a record class nested in it) declares a personal field as a message does,
with `streams.core.records.Personal` naming the field of the same class that holds the subject::

    class Member(Struct, frozen=True):
        member_id: str = ""
        email: Annotated[str | None, Personal(subject="member_id", erased="[erased]")] = None

`evolve` and `decide` see the plain value. In a row (`streams.wire.state`) the field's cell is
one of:

- null: the value is null (nothing to seal);
- `false`: the value is the declared replacement (nothing to seal, so writing again the state of
  a forgotten subject creates no key for it);
- the sealed value (`streams.privacy.cipher`): the same cipher, keyring and key per subject as
  the events, bound to the subject, the class name and the field name.

A cell whose subject's key is gone reads as the replacement: a state restored from the
changelog, or read from RocksDB, after the subject was forgotten holds no personal value. The
plan is computed once per class; a class without personal fields has none (`state_fields`
returns nothing) and its rows are what they were.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from streams.core.records import is_record_class, personal_of, record_fields
from streams.privacy.errors import MalformedCiphertext, TamperedCiphertext
from streams.privacy.keys import Keyring
from streams.wire.codec_errors import MalformedField, TamperedField
from streams.wire.personal import PersonalField, PersonalSchemaError

ERASED_CELL = False
"""The cell of a personal field holding its declared replacement."""


@dataclass(frozen=True, slots=True)
class SealedStateField:
    """One personal field of a state class: how its cell is written and read."""

    type_name: str
    field: PersonalField
    subject_index: int
    """The position of the subject's field in the row."""
    keys: Callable[[], Keyring]
    """The keyring, asked for only when a value is sealed or opened (`NoMasterKey` without one)."""

    def seal(self, subject: str, value: Any) -> Any:
        """The cell of `value`."""
        if value is None:
            return None
        if value == self.field.erased:
            return ERASED_CELL
        return self.field.seal(self.type_name, subject, value, self.keys())

    def open(self, subject: str, cell: Any) -> Any:
        """The value of a cell (the replacement when the subject's key is gone). Raises
        `TamperedField` or `MalformedField`."""
        if cell is None:
            return None
        if cell is ERASED_CELL:
            return self.field.erased
        where = f"state {self.type_name}.{self.field.name} of subject {subject!r}"
        try:
            return self.field.open(self.type_name, subject, cell, self.keys())[0]
        except TamperedCiphertext as exc:
            raise TamperedField(f"{where}: {exc}; `streams rebuild` rewrites the state from the log") from exc
        except (MalformedCiphertext, KeyError, TypeError, ValueError, msgspec.DecodeError) as exc:
            raise MalformedField(
                f"{where}: not a sealed value ({type(exc).__name__}: {exc}); a field made personal "
                "after its rows were written needs `streams rebuild`"
            ) from exc


def state_fields(cls: type, keys: Callable[[], Keyring]) -> dict[int, SealedStateField]:
    """The personal fields of a state class (not of the classes nested in it) by their position
    in the row; empty when it has none. Raises `PersonalSchemaError`."""
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = record_fields(cls)
    position = {f.name: i for i, f in enumerate(fields)}
    found: dict[int, SealedStateField] = {}
    for i, f in enumerate(fields):
        marker = personal_of(hints[f.name])
        if marker is None:
            continue
        where = f"{cls.__name__}.{f.name}"
        plain = typing.get_type_hints(cls)[f.name]
        if typing.get_origin(plain) is tuple or _records_in(plain):
            raise PersonalSchemaError(f"{where}: a personal state field holds a plain value, not {plain}")
        subject = marker.subject
        if subject not in position or personal_of(hints[subject]) is not None:
            raise PersonalSchemaError(
                f"{where}: the subject {subject!r} must be a plain field of {cls.__name__}"
            )
        field = PersonalField(f.name, subject, marker.erased)
        found[i] = SealedStateField(cls.__name__, field, position[subject], keys)
    return found


def has_personal(cls: type) -> bool:
    """Whether a state class, or a record class nested in it (itself or a tuple of them), has a
    personal field. Raises `PersonalSchemaError` for one nested otherwise (`X | None`): the rows
    hold such a record as it is, so its personal fields would not be sealed."""
    hints = typing.get_type_hints(cls, include_extras=True)
    for f in record_fields(cls):
        if personal_of(hints[f.name]) is not None:
            return True
        plain = typing.get_type_hints(cls)[f.name]
        args = typing.get_args(plain) if typing.get_origin(plain) is tuple else (plain,)
        if any(is_record_class(a) and has_personal(a) for a in args):
            return True
        if any(has_personal(r) for r in _records_in(plain)):
            raise PersonalSchemaError(
                f"{cls.__name__}.{f.name}: a record with personal fields is nested in a state as "
                f"itself or as a tuple of them, not as {plain} (its fields would not be sealed)"
            )
    return False


def _records_in(hint: Any) -> list[type]:
    """The record classes of a union hint (`X | None`)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return [a for a in typing.get_args(hint) if is_record_class(a)]
    return []
