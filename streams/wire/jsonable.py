"""Messages and JSON: building messages from JSON-like input (CLI and HTTP) with errors that
name the field, and the one compact JSON encoder of the hot paths."""

from __future__ import annotations

import json
from typing import Any

import orjson

from streams.core.records import is_record, record_fields


def to_json(obj: Any) -> Any:
    """A record (or tuple of them) as plain JSON-ready data."""
    if is_record(obj):
        return {f.name: to_json(getattr(obj, f.name)) for f in record_fields(type(obj))}
    if isinstance(obj, list | tuple):
        return [to_json(v) for v in obj]
    return obj


def json_bytes(value: Any, *, sort_keys: bool = False) -> bytes:
    """Compact JSON (orjson: projectors and sink rows encode JSON for every event, and the
    standard library's encoder was the projector's largest cost). Values orjson refuses
    (integers beyond 64 bits, non-string keys) go through the standard library."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort_keys else 0)
    except TypeError:
        return json.dumps(value, separators=(",", ":"), sort_keys=sort_keys).encode()
