"""The Grafana dashboard (ops/grafana) and the Prometheus console page (ops/prometheus/consoles):
valid JSON and provisioning, every PromQL expression naming only metrics `streams/metrics.py`
defines (or prometheus_client's process collector exports) and grouping by labels they have, and
the console page drawing the same expressions as the dashboard."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client.metrics import MetricWrapperBase

from streams import metrics

ROOT = Path(__file__).resolve().parents[3]
DASHBOARD = ROOT / "ops" / "grafana" / "dashboards" / "streams.json"
CONSOLE = ROOT / "ops" / "prometheus" / "consoles" / "streams.html"
PROCESS = {"process_resident_memory_bytes": (), "process_cpu_seconds_total": ()}
"""prometheus_client's process collector (no labels of its own)."""
TARGET_LABELS = {"instance", "job", "le"}
"""Labels Prometheus adds (instance, job) and histogram buckets carry (le)."""
FUNCTIONS = {"sum", "rate", "increase", "histogram_quantile", "max", "min", "avg", "count", "by", "without"}


def defined() -> dict[str, tuple[str, ...]]:
    """Every series name streams/metrics.py's metrics expose, with their labels."""
    out: dict[str, tuple[str, ...]] = dict(PROCESS)
    for value in vars(metrics).values():
        if not isinstance(value, MetricWrapperBase):
            continue
        name, labels, kind = value._name, tuple(value._labelnames), value._type
        if kind == "counter":
            out[f"{name}_total"] = labels
        elif kind == "histogram":
            for suffix in ("_bucket", "_count", "_sum"):
                out[name + suffix] = labels
        else:
            out[name] = labels
    return out


def dashboard_exprs() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel["targets"]]


def console_exprs() -> list[str]:
    page = CONSOLE.read_text()
    panels = json.loads(page[page.index("const PANELS = ") + len("const PANELS = ") : page.index("];\n") + 1])
    return [expr for panel in panels for expr in panel["expr"]]


def test_the_dashboard_is_provisioned_json_with_one_data_source() -> None:
    board = json.loads(DASHBOARD.read_text())
    assert board["uid"] and board["panels"]
    uids = {t["datasource"]["uid"] for p in board["panels"] for t in p["targets"]}
    source = yaml.safe_load((ROOT / "ops/grafana/provisioning/datasources/prometheus.yml").read_text())
    assert uids == {source["datasources"][0]["uid"]}
    provider = yaml.safe_load((ROOT / "ops/grafana/provisioning/dashboards/streams.yml").read_text())
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./ops/grafana/dashboards:{provider['providers'][0]['options']['path']}:ro" in mounts
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])


def test_every_expression_names_defined_metrics_and_their_labels() -> None:
    known = defined()
    for expr in dashboard_exprs() + console_exprs():
        names = [n for n in re.findall(r"\b([a-z_]+_[a-z_]+)\b(?!\s*\()", expr) if n not in FUNCTIONS]
        series = [n for n in names if n.startswith(("streams_", "process_"))]
        assert series, expr
        for name in series:
            assert name in known, f"{name} is not defined by streams/metrics.py: {expr}"
        labels = set(TARGET_LABELS).union(*(known[n] for n in series))
        for group in re.findall(r"by \(([^)]*)\)", expr):
            for label in (x.strip() for x in group.split(",")):
                assert label in labels, f"{label} is not a label of {series}: {expr}"


def test_the_console_page_draws_the_dashboards_panels() -> None:
    assert console_exprs() == dashboard_exprs()
