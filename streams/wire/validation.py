"""JSON input checked against a message's Avro schema, exactly: no coercion, no truncation.

The HTTP API turns JSON into commands. JSON and Avro disagree in ways that would silently change
a value (`true` is not a `long`, `2.75` is not a `long`, 2^63 does not fit one, a big integer
parsed as a float is not an integer), so a value must have the Avro type's own JSON form:
`int`/`long` take JSON integers within their 32/64-bit range (never booleans or fractions),
`float`/`double` take finite numbers, `string` takes strings within the field's `maxLength`
(`streams.wire.limits`) and without U+0000, records take objects without unknown fields and with
every field that has no default. A personal field (`streams.wire.personal`) takes the plain
value its message holds, not the sealed bytes of the wire. The same schemas give the OpenAPI
document its JSON Schemas.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from streams.wire.limits import DEFAULT_MAX_CHARS, MAX_LENGTH
from streams.wire.personal import plain_type

INT_RANGE = (-(2**31), 2**31 - 1)
LONG_RANGE = (-(2**63), 2**63 - 1)


class JsonInvalid(ValueError):
    """A JSON value that is not a valid instance of its schema; `field` is its path."""

    reason = "invalid_field"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field or 'data'} {message}")
        self.field = field


Check = Callable[[Any, str], None]


def _name(schema: Any) -> str:
    if isinstance(schema, str):
        return schema
    if isinstance(schema, list):
        return " or ".join(_name(s) for s in schema)
    return str(schema.get("type"))


class _Compiler:
    """Compiles a schema into a check, resolving named types defined earlier in the schema."""

    def __init__(self) -> None:
        self.named: dict[str, Any] = {}

    def compile(self, schema: Any, max_chars: int = DEFAULT_MAX_CHARS) -> Check:
        if isinstance(schema, list):
            branches = [(branch, self.compile(branch, max_chars)) for branch in schema]
            return lambda value, path: _union(branches, value, path)
        if isinstance(schema, str):
            if schema in self.named:
                return self.compile(self.named[schema], max_chars)
            return _primitive(schema, max_chars)
        kind = schema["type"]
        if kind == "record":
            return self._record(schema)
        if kind == "array":
            items = self.compile(schema["items"], max_chars)
            return lambda value, path: _array(items, value, path)
        if kind == "map":
            values = self.compile(schema["values"], max_chars)
            return lambda value, path: _map(values, value, path)
        if kind == "enum":
            symbols = frozenset(schema["symbols"])
            self.named[schema["name"]] = schema
            return lambda value, path: _enum(symbols, value, path)
        return self.compile(kind, max_chars)

    def _record(self, schema: dict[str, Any]) -> Check:
        self.named[schema["name"]] = schema
        if schema.get("namespace"):
            self.named[f"{schema['namespace']}.{schema['name']}"] = schema
        fields = [
            (
                f["name"],
                "default" in f,
                self.compile(plain_type(f), int(f.get(MAX_LENGTH, DEFAULT_MAX_CHARS))),
            )
            for f in schema["fields"]
        ]
        known = frozenset(name for name, _, _ in fields)

        def check(value: Any, path: str) -> None:
            if not isinstance(value, dict):
                raise JsonInvalid(path, f"must be an object, not {_json_type(value)}")
            prefix = f"{path}." if path else ""
            unknown = sorted(set(value) - known)
            if unknown:
                raise JsonInvalid(f"{prefix}{unknown[0]}", "is not a field of this message")
            for name, has_default, field_check in fields:
                if name in value:
                    field_check(value[name], f"{prefix}{name}")
                elif not has_default:
                    raise JsonInvalid(f"{prefix}{name}", "is missing (it has no default)")

        return check


def compile_validator(schema: dict[str, Any]) -> Callable[[Any], None]:
    """A check of a JSON value against a record schema (raises JsonInvalid naming the field)."""
    check = _Compiler().compile(schema)
    return lambda value: check(value, "")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number with a fraction" if not value.is_integer() else "a floating-point number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _primitive(kind: str, max_chars: int) -> Check:
    if kind in ("int", "long"):
        low, high = INT_RANGE if kind == "int" else LONG_RANGE

        def integer(value: Any, path: str) -> None:
            if type(value) is not int:
                raise JsonInvalid(path, f"must be an integer ({kind}), not {_json_type(value)}")
            if not low <= value <= high:
                raise JsonInvalid(path, f"{value} is outside the range of an Avro {kind} [{low}, {high}]")

        return integer
    if kind in ("float", "double"):

        def number(value: Any, path: str) -> None:
            if type(value) not in (int, float) or not math.isfinite(value):
                raise JsonInvalid(path, f"must be a finite number ({kind}), not {_json_type(value)}")

        return number
    if kind == "string":

        def string(value: Any, path: str) -> None:
            if not isinstance(value, str):
                raise JsonInvalid(path, f"must be a string, not {_json_type(value)}")
            if len(value) > max_chars:
                raise JsonInvalid(path, f"has {len(value)} characters; at most {max_chars}")
            if "\x00" in value:
                raise JsonInvalid(path, "contains U+0000")

        return string
    if kind == "boolean":

        def boolean(value: Any, path: str) -> None:
            if type(value) is not bool:
                raise JsonInvalid(path, f"must be true or false, not {_json_type(value)}")

        return boolean
    if kind == "null":

        def null(value: Any, path: str) -> None:
            if value is not None:
                raise JsonInvalid(path, f"must be null, not {_json_type(value)}")

        return null

    def unsupported(value: Any, path: str) -> None:
        raise JsonInvalid(path, f"has the Avro type {kind}, which has no JSON form here")

    return unsupported


def _union(branches: list[tuple[Any, Check]], value: Any, path: str) -> None:
    errors = []
    for _, check in branches:
        try:
            check(value, path)
            return
        except JsonInvalid as exc:
            errors.append(exc)
    if len(errors) == 1:
        raise errors[0]
    expected = " or ".join(_name(schema) for schema, _ in branches)
    raise JsonInvalid(path, f"must be {expected}, not {_json_type(value)}")


def _array(items: Check, value: Any, path: str) -> None:
    if not isinstance(value, list):
        raise JsonInvalid(path, f"must be an array, not {_json_type(value)}")
    for i, item in enumerate(value):
        items(item, f"{path}[{i}]")


def _map(values: Check, value: Any, path: str) -> None:
    if not isinstance(value, dict):
        raise JsonInvalid(path, f"must be an object, not {_json_type(value)}")
    for key, item in value.items():
        values(item, f"{path}.{key}")


def _enum(symbols: frozenset[str], value: Any, path: str) -> None:
    if value not in symbols:
        raise JsonInvalid(path, f"must be one of {', '.join(sorted(symbols))}")


# --- JSON Schema (for the OpenAPI document) ----------------------------------------------------


def json_schema(
    schema: Any, named: dict[str, Any] | None = None, max_chars: int = DEFAULT_MAX_CHARS
) -> dict[str, Any]:
    """The JSON Schema (2020-12, as OpenAPI 3.1 uses) that `compile_validator` enforces."""
    named = {} if named is None else named
    if isinstance(schema, list):
        return {"anyOf": [json_schema(s, named, max_chars) for s in schema]}
    if isinstance(schema, str):
        if schema in named:
            return json_schema(named[schema], named, max_chars)
        return _primitive_schema(schema, max_chars)
    kind = schema["type"]
    if kind == "record":
        named[schema["name"]] = schema
        properties = {}
        required = []
        for field in schema["fields"]:
            limit = int(field.get(MAX_LENGTH, DEFAULT_MAX_CHARS))
            prop = json_schema(plain_type(field), named, limit)
            if "doc" in field:
                prop["description"] = field["doc"]
            if "default" in field:
                prop["default"] = field["default"]
            else:
                required.append(field["name"])
            properties[field["name"]] = prop
        out: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
        if required:
            out["required"] = required
        if "doc" in schema:
            out["description"] = schema["doc"]
        return out
    if kind == "array":
        return {"type": "array", "items": json_schema(schema["items"], named, max_chars)}
    if kind == "map":
        return {"type": "object", "additionalProperties": json_schema(schema["values"], named, max_chars)}
    if kind == "enum":
        named[schema["name"]] = schema
        return {"type": "string", "enum": list(schema["symbols"])}
    return json_schema(kind, named, max_chars)


def _primitive_schema(kind: str, max_chars: int) -> dict[str, Any]:
    if kind in ("int", "long"):
        low, high = INT_RANGE if kind == "int" else LONG_RANGE
        return {
            "type": "integer",
            "minimum": low,
            "maximum": high,
            "format": "int32" if kind == "int" else "int64",
        }
    if kind in ("float", "double"):
        return {"type": "number"}
    if kind == "string":
        return {"type": "string", "maxLength": max_chars, "pattern": "^[^\\u0000]*$"}
    if kind == "boolean":
        return {"type": "boolean"}
    if kind == "null":
        return {"type": "null"}
    return {}
