"""The Prometheus rules of ops/prometheus/ checked and run on sample series by Debian's `promtool`
(package `prometheus`, which `bash ops/prereqs.sh test` installs): every alert fires on the series
it is about, and not on the healthy ones next to them (rules_test.yml)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

RULES = Path(__file__).resolve().parents[2] / "ops" / "prometheus"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.fail("needs promtool: `make test` installs it (bash ops/prereqs.sh test: Debian's prometheus)")
    return subprocess.run([tool, *args], cwd=RULES, capture_output=True, text=True, timeout=60)


def test_the_rules_are_valid() -> None:
    run = promtool("check", "rules", "rules.yml")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout


def test_the_alerts_fire_on_the_sample_series_and_only_there() -> None:
    run = promtool("test", "rules", "rules_test.yml")
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_scrape_config_loads_the_rules(tmp_path: Path) -> None:
    # the token file it names exists in the Prometheus container only: checked here with one of its own
    token = tmp_path / "worker-token"
    token.write_text("t")
    config = (RULES / "prometheus.yml").read_text()
    in_container = "/var/lib/prometheus/secrets/worker-token"
    assert f"credentials_file: {in_container}" in config  # no token in the file
    (tmp_path / "prometheus.yml").write_text(config.replace(in_container, str(token)))
    shutil.copy(RULES / "rules.yml", tmp_path / "rules.yml")
    run = promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "rules.yml" in run.stdout
