"""The identifier policy: what an aggregate id, command id, correlation id or actor may be.

Identifiers travel as record keys and headers of every event, result and changelog record, as
RocksDB key components, URL path segments and PostgreSQL `VARCHAR(255)` columns. So they are
bounded (`MAX_IDENTIFIER_CHARS`) and may not contain control characters (U+0000-U+001F,
U+007F-U+009F) or lone surrogates. The HTTP API and the client check them before producing;
the worker checks them again for records produced directly to Kafka.
"""

from __future__ import annotations

import re

MAX_IDENTIFIER_CHARS = 255
_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


class InvalidIdentifier(ValueError):
    """An identifier outside the policy; `field` names it, the message says why."""

    reason = "invalid_identifier"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field} {message}")
        self.field = field


def check_identifier(field: str, value: str, *, required: bool = True) -> None:
    """InvalidIdentifier unless `value` is a valid identifier (empty allowed if not `required`)."""
    if not value:
        if required:
            raise InvalidIdentifier(field, "must not be empty")
        return
    if len(value) > MAX_IDENTIFIER_CHARS:
        raise InvalidIdentifier(field, f"has {len(value)} characters; at most {MAX_IDENTIFIER_CHARS}")
    found = _FORBIDDEN.search(value)
    if found is not None:
        raise InvalidIdentifier(
            field, f"contains the control character U+{ord(found.group()):04X} at position {found.start()}"
        )


def identifiers_fit(*values: str) -> bool:
    """Whether every value passes `check_identifier` when not required (one regex search for all:
    the hot path's test; `check_identifier` then says which one fails and why)."""
    for value in values:
        if len(value) > MAX_IDENTIFIER_CHARS:
            return False
    return _FORBIDDEN.search("".join(values)) is None


def shorten(value: str, limit: int = 64) -> str:
    """An identifier cut for an error message (a refused one can be a megabyte long)."""
    return value if len(value) <= limit else f"{value[:limit]}… ({len(value)} characters)"
