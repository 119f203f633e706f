"""BENCHMARKS.md and the README's figures are generated from the committed result files, never typed."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from bench import benchmarks_md as gen
from bench.plots import draw, latency_curves, throughput_bars

UNIT = re.compile(r"\d[\d,.]*\s*(?:µs|ms|cmd/s|ev/s|rec/s|commands/s|events/s|records/s|MiB|KB|\u00d7)")


def _provenance(load: float) -> dict[str, Any]:
    return {
        "commit": "0123456789abcdef",
        "tree_dirty": False,
        "python": "3.11.7",
        "librdkafka": "2.16.0",
        "confluent_kafka": "2.16.2",
        "kafka": "4.1.1",
        "jdk": "openjdk 17",
        "quixstreams": "3.28.1",
        "cpus": 2,
        "load_avg": load,
        "at": "2099-01-01T00:00:00Z",
    }


def _bench() -> dict[str, Any]:
    return {
        "provenance_at_start": _provenance(1.5),
        "provenance_at_end": _provenance(2.5),
        "load_avg_at_start": 1.5,
        "load_avg_at_end": 2.5,
        "commands": 1000,
        "aggregates": 100,
        "record_bytes": 16.2,
        "partitions": 4,
        "complete": True,
        "b_write_path_cps": 12345.6,
        "g_quix_cps": 6000.0,
        "h_kstreams_cps": 20000.0,
        "ratio_b_over_g": 2.0576,
        "latency_rate": 1000,
        "latency_p99_ms": 42.04,
        "latency_cdf_ms": {"1000": [float(i) for i in range(101)]},
        "write_path_rounds": [{"order": ["g", "h", "b"], "b": 12345.6, "g": 6000.0, "h": 20000.0}],
        "targets": [{"target": "b ≥ 2.0 x g", "key": "ratio_b_over_g", "value": "2.06", "met": True}],
    }


def _http() -> dict[str, Any]:
    side = {"p50_ms": 20.0, "p99_ms": 45.25, "n": 400, "cdf_ms": [float(i) for i in range(101)]}
    return {"provenance_at_start": _provenance(3.0), "load_avg_at_end": 3.5, "connections": 200,
            "alone": side, "concurrent": side}  # fmt: skip


@pytest.fixture
def results(tmp_path: Path) -> Path:
    (tmp_path / "bench-20990101T000000.json").write_text(json.dumps({"commands": 1}))
    (tmp_path / "bench-20990102T000000.json").write_text(json.dumps(_bench()))
    (tmp_path / "games-bench-20990103T000000.json").write_text(json.dumps({"provenance": _provenance(9)}))
    (tmp_path / "http-20990101T000000.json").write_text(json.dumps(_http()))
    (tmp_path / "history_pages.json").write_text("{}")  # not time-stamped: not a run
    return tmp_path


def test_the_committed_documents_are_what_the_committed_results_generate() -> None:
    generated = gen.blocks()
    for document in gen.DOCUMENTS:
        text = document.read_text()
        assert gen.BLOCK.search(text), f"{document.name} has no generated block"
        assert gen.fill(text, generated) == text, f"{document.name}: run python -m bench.benchmarks_md"


def test_no_figure_is_typed_outside_the_generated_blocks() -> None:
    for document in gen.DOCUMENTS:
        prose = gen.BLOCK.sub("", document.read_text())
        typed = [line for line in prose.splitlines() if UNIT.search(line)]
        assert typed == [], f"{document.name} has figures no result file generated: {typed}"


def test_the_plots_shown_are_committed() -> None:
    text = (gen.ROOT / "BENCHMARKS.md").read_text()
    for image in re.findall(r"!\[[^]]*\]\(([^)]+)\)", text):
        assert (gen.ROOT / image).is_file(), image


def test_the_newest_file_of_each_kind_is_used(results: Path) -> None:
    kinds = gen.result_files(results)
    assert sorted(kinds) == ["bench", "games-bench", "http"]
    newest = gen.latest("bench", results)
    assert newest is not None and newest.name == "bench-20990102T000000.json"
    assert gen.latest("realtime", results) is None


def test_blocks_render_the_figures_and_the_provenance(results: Path) -> None:
    blocks = gen.blocks(results, images=[])
    assert "bench-20990102T000000.json" in blocks["bench-run"]
    assert "| librdkafka | 2.16.0 | 2.16.0 |" in blocks["bench-run"]
    assert "| load average (1 min) | 1.50 | 2.50 |" in blocks["bench-run"]
    assert "| b. write path, exactly once | 12,346 cmd/s |" in blocks["bench-figures"]
    assert "| round 1: order | g → h → b |" in blocks["bench-figures"]
    assert "| b ≥ 2.0 x g | 2.06 | yes |" in blocks["bench-targets"]
    assert "| 200 concurrent connections | 400 | 20.0 ms | 45.2 ms |" in blocks["http"]
    assert "| b. our write path, exactly once | 12,346 commands/s |" in blocks["readme"]
    assert "No committed result file" in blocks["realtime"]
    assert "| games-bench | 1 |" in blocks["result-files"]


def test_fill_replaces_only_the_blocks_and_refuses_unknown_ones() -> None:
    text = "before\n<!-- generated: http (x) -->\nold\n<!-- end: http -->\nafter\n"
    assert gen.fill(text, {"http": "new\n"}) == text.replace("old", "new")
    with pytest.raises(KeyError):
        gen.fill(text.replace("http", "nope"), {"http": ""})


def test_the_plots_are_drawn_from_the_result(tmp_path: Path) -> None:
    bench = _bench()
    assert [label for label, _ in throughput_bars(bench)] == [
        "b. write path, exactly once",
        "g. Quix Streams",
        "h. Kafka Streams",
    ]
    assert [c.label for c in latency_curves(bench, _http())] == [
        "command → result at 1000/s",
        "HTTP command, one client",
        "HTTP command, 200 clients",
    ]
    drawn = draw(bench, _http(), tmp_path / "bench-20990102T000000")
    assert [p.name for p in drawn] == [
        "bench-20990102T000000-throughput.png",
        "bench-20990102T000000-latency.png",
    ]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in drawn)
