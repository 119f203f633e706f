"""A command request's body, parsed strictly: the envelope and its `data`, nothing coerced.

The body is JSON (orjson: invalid UTF-8, lone surrogates, numbers out of double range and nesting
past 1,024 levels are refused), an object whose fields are `aggregate_id` (required), `data`,
`expected_version`, `command_id`, `correlation_id` and `actor`, each of its own JSON type;
identifiers follow the identifier policy; `data` is checked against the command's latest schema
(`streams.wire.validation`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from streams.wire.identifiers import InvalidIdentifier, check_identifier
from streams.wire.validation import LONG_RANGE, JsonInvalid

ENVELOPE_FIELDS = frozenset(
    {"aggregate_id", "data", "expected_version", "command_id", "correlation_id", "actor"}
)


class BadEnvelope(ValueError):
    """A request body that is not a valid command envelope; `reason` and `field` say why."""

    def __init__(self, reason: str, message: str, field: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.field = field


@dataclass(frozen=True)
class Envelope:
    """A command request, checked."""

    aggregate_id: str
    data: dict[str, Any]
    expected_version: int | None
    command_id: str
    correlation_id: str
    actor: str


def parse_envelope(body: bytes) -> Envelope:
    """The envelope of a request body (BadEnvelope naming the problem)."""
    try:
        parsed = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise BadEnvelope("invalid_json", f"the body is not JSON (it fails at {where})") from None
    if not isinstance(parsed, dict):
        raise BadEnvelope("invalid_envelope", "the body must be a JSON object")
    unknown = sorted(set(parsed) - ENVELOPE_FIELDS)
    if unknown:
        raise BadEnvelope("invalid_envelope", f"{unknown[0]} is not a field of a command request", unknown[0])
    aggregate_id = _text(parsed, "aggregate_id", required=True)
    data = parsed.get("data", {})
    if not isinstance(data, dict):
        raise BadEnvelope("invalid_envelope", "data must be a JSON object", "data")
    expected = parsed.get("expected_version")
    if expected is not None and (type(expected) is not int or not 0 <= expected <= LONG_RANGE[1]):
        raise BadEnvelope(
            "invalid_envelope", "expected_version must be an integer from 0", "expected_version"
        )
    return Envelope(
        aggregate_id,
        data,
        expected,
        _text(parsed, "command_id"),
        _text(parsed, "correlation_id"),
        _text(parsed, "actor"),
    )


def _text(parsed: dict[str, Any], name: str, *, required: bool = False) -> str:
    value = parsed.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise BadEnvelope("invalid_envelope", f"{name} must be a string", name)
    try:
        check_identifier(name, value, required=required)
    except InvalidIdentifier as exc:
        raise BadEnvelope(exc.reason, str(exc), name) from None
    return value


def data_problem(exc: JsonInvalid) -> BadEnvelope:
    """A `data` field that does not fit the command's schema, as an envelope problem."""
    field = f"data.{exc.field}" if exc.field else "data"
    return BadEnvelope(exc.reason, f"data.{exc}" if exc.field else str(exc), field)
