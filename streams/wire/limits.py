"""String limits of commands, declared in their schemas and checked before a decider runs.

A string field of a command schema may declare `"maxLength": N` (an Avro field property, which
Avro resolution ignores); one that does not gets `DEFAULT_MAX_CHARS`. Personal fields
(`streams.wire.personal`) are checked as the strings they are before sealing. No command string may
contain U+0000 (PostgreSQL's text and JSON columns cannot hold it). So a decider never sees a
megabyte string, and the HTTP API answers 400 for what the worker would dead-letter.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streams.wire.personal import PII
from streams.wire.schemas import SchemaCatalog, to_record
from streams.wire.topics import DLQ_MAX_BYTES

DEFAULT_MAX_CHARS = 4096
MAX_LENGTH = "maxLength"

_BATCH_FRAMING = 64 * 1024
"""Room for a record batch's header and a record's headers above its value and key."""


def producer_message_max_bytes(max_message_bytes: int) -> int:
    """librdkafka's `message.max.bytes` for every producer of the project: room for the largest
    record a topic of the project accepts (`max_message_bytes`, DLQ topics' `DLQ_MAX_BYTES`), so
    a record the broker would take is never refused by the client first (librdkafka's default is
    1,000,000 bytes, below the topics' 1 MiB). The broker still enforces each topic's own limit."""
    return max(max_message_bytes, DLQ_MAX_BYTES) + _BATCH_FRAMING


class FieldTooLong(ValueError):
    """A command string over its limit, or holding U+0000; `field` names it."""

    reason = "invalid_field"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field} {message}")
        self.field = field


@dataclass(frozen=True)
class _Rule:
    name: str
    max_chars: int | None
    """For a string field; None for a nested record or an array of them."""
    nested: Callable[[Any, str], None] | None = None


def _is_string(field: dict[str, Any]) -> bool:
    """A string field, or a personal one (`bytes` on the wire, a string in the message)."""
    schema = field["type"]
    return schema == "string" or (isinstance(schema, list) and "string" in schema) or bool(field.get(PII))


def _record_of(schema: Any) -> dict[str, Any] | None:
    """The record schema of a field holding one record or an array of records, if any."""
    if isinstance(schema, dict) and schema.get("type") == "record":
        return schema
    if isinstance(schema, dict) and schema.get("type") == "array":
        return _record_of(schema["items"])
    if isinstance(schema, list):
        for branch in schema:
            found = _record_of(branch)
            if found is not None:
                return found
    return None


def _compile(schema: dict[str, Any], default: int) -> Callable[[Any, str], None]:
    rules: list[_Rule] = []
    for field in schema.get("fields", []):
        if _is_string(field):
            rules.append(_Rule(field["name"], int(field.get(MAX_LENGTH, default))))
        else:
            record = _record_of(field["type"])
            if record is not None:
                rules.append(_Rule(field["name"], None, _compile(record, default)))

    def check(record: Any, where: str) -> None:
        for rule in rules:
            value = record.get(rule.name) if isinstance(record, dict) else None
            if value is None:
                continue
            path = f"{where}{rule.name}"
            if rule.nested is not None:
                for i, item in enumerate(value if isinstance(value, list) else [value]):
                    rule.nested(item, f"{path}[{i}]." if isinstance(value, list) else f"{path}.")
                continue
            if isinstance(value, str):
                if rule.max_chars is not None and len(value) > rule.max_chars:
                    raise FieldTooLong(path, f"has {len(value)} characters; at most {rule.max_chars}")
                if "\x00" in value:
                    raise FieldTooLong(path, "contains U+0000")

    return check


def _compile_fits(schema: dict[str, Any], default: int) -> Callable[[Any], bool] | None:
    """A predicate of a message object: every string field within its limit and free of U+0000.
    None for schemas with nested records (the record walk checks those)."""
    tests = []
    for field in schema.get("fields", []):
        if _record_of(field["type"]) is not None:
            return None
        if _is_string(field):
            name, limit = field["name"], int(field.get(MAX_LENGTH, default))
            tests.append(f"((v := o.{name}) is None or (len(v) <= {limit} and '\\x00' not in v))")
    scope: dict[str, Any] = {}
    exec(f"def fits(o):\n    return {' and '.join(tests) or 'True'}\n", scope)  # our own source
    return typing.cast(Callable[[Any], bool], scope["fits"])


class CommandLimits:
    """The string limits of every command type of a catalog (the latest version of each)."""

    def __init__(
        self, catalog: SchemaCatalog, command_names: list[str], default: int = DEFAULT_MAX_CHARS
    ) -> None:
        schemas = {name: json.loads(catalog.latest(name).text) for name in command_names}
        self._checks = {name: _compile(schema, default) for name, schema in schemas.items()}
        self._fits = {name: _compile_fits(schema, default) for name, schema in schemas.items()}

    def check_message(self, type_name: str, message: Any) -> None:
        """`check` of a message object: a generated test of its fields first, the record walk
        (which names the field) only for a message that fails it."""
        fits = self._fits.get(type_name)
        try:
            if fits is not None and fits(message):
                return
        except (AttributeError, TypeError):  # a class whose fields differ from its schema's
            pass
        self.check(type_name, to_record(message))

    def check(self, type_name: str, record: dict[str, Any]) -> None:
        """FieldTooLong for the first string over its limit (a command's record form)."""
        check = self._checks.get(type_name)
        if check is not None:
            check(record, "")
