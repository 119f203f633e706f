"""Sample records of every schema version: scaffold missing ones, refresh their expected upcasts.

    .venv/bin/python -m tests.compat.samples_tool            # scaffold missing sample files
    .venv/bin/python -m tests.compat.samples_tool --expect   # (re)write each sample's "latest"

A sample file `tests/compat/samples/<ctx>/<Type>.v<N>.json` is a list of
`{"record": <a record as a producer of vN wrote it>, "latest": <what reading it must give>}`.
`record` is history: once a version is released, never edit it. `latest` is what the current
code turns it into (through Avro resolution and upcasters); `--expect` rewrites it from the
code, so review that diff like any other behaviour change. The compatibility gate
(tests/unit/test_versioning.py) fails when a sample is missing, no longer decodes, decodes to
something else than `latest`, or breaks `evolve` or a projection.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from streams.contexts import CONTEXTS
from streams.kafka.runtime import catalog_for
from streams.wire.codec import AvroCodec
from streams.wire.schemas import SchemaVersion, to_record

SAMPLES = Path(__file__).resolve().parent / "samples"


def sample_path(context_name: str, sv: SchemaVersion) -> Path:
    return SAMPLES / context_name / f"{sv.type_name}.v{sv.version}.json"


def governed(context: Any) -> list[str]:
    """The type names whose history is kept: commands, events and the state (snapshots)."""
    return [t.__name__ for t in (*context.commands, *context.events, context.state_type)]


def placeholder(schema: Any) -> Any:
    """A value that fits an Avro schema (a start for a hand-written sample)."""
    if isinstance(schema, list):
        return placeholder(schema[0])
    if isinstance(schema, dict):
        kind = schema["type"]
        if kind == "record":
            return {f["name"]: f.get("default", placeholder(f["type"])) for f in schema["fields"]}
        if kind == "array":
            return [placeholder(schema["items"])]
        if kind == "map":
            return {"k": placeholder(schema["values"])}
        if kind == "enum":
            return schema["symbols"][0]
        return placeholder(kind)
    return {"null": None, "string": "x", "long": 1, "int": 1, "boolean": False, "double": 1.0}.get(
        str(schema)
    )


def latest_of(codec: AvroCodec, sv: SchemaVersion, record: dict[str, Any]) -> dict[str, Any]:
    """What the codec reads a vN record as (the one decode path), as a plain record."""
    decoded = codec.decode(codec.encode_record(sv.type_name, sv.version, record))
    return to_record_deep(decoded.message)


def to_record_deep(message: Any) -> dict[str, Any]:
    return json.loads(json.dumps(to_record(message), default=to_record_deep))


def main(argv: list[str]) -> int:
    expect = "--expect" in argv
    for context in CONTEXTS.values():
        catalog = catalog_for(context)
        codec = AvroCodec.offline(catalog)
        for type_name in governed(context):
            for sv in catalog.versions(type_name):
                path = sample_path(context.name, sv)
                if not path.exists():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    record = placeholder(json.loads(sv.text))
                    samples = [{"record": record, "latest": latest_of(codec, sv, record)}]
                    print(f"scaffolded {path.relative_to(SAMPLES)}: edit its record to a realistic one")
                elif expect:
                    samples = json.loads(path.read_text())
                    for sample in samples:
                        sample["latest"] = latest_of(codec, sv, sample["record"])
                else:
                    continue
                path.write_text(json.dumps(samples, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
