"""The public API: every name `streams` exports resolves, and `import streams` stays light."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import streams
from tests.conftest import ROOT

HEAVY = ("confluent_kafka", "faust", "mode", "aiohttp", "rocksdict", "fastavro", "httpx", "psycopg")


def test_every_exported_name_resolves() -> None:
    missing = [name for name in streams.__all__ if getattr(streams, name, None) is None]
    assert missing == []
    assert len(set(streams.__all__)) == len(streams.__all__)
    assert set(streams.__all__) <= set(dir(streams))


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = streams.no_such_name


def test_import_streams_loads_no_kafka_faust_or_web_library() -> None:
    probe = "import json, sys, streams; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    loaded = {name.split(".")[0] for name in json.loads(out.stdout)}
    assert loaded.isdisjoint(HEAVY), loaded & set(HEAVY)


def test_every_exported_name_is_documented() -> None:
    page = (ROOT / "docs" / "api.md").read_text()
    undocumented = [name for name in streams.__all__ if f"`{name}`" not in page]
    assert undocumented == []
