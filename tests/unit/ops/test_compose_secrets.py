"""docker-compose.yml takes its secrets from the `.env` that ops/compose-secrets.sh generates: no
defaults in the file, no password in a DSN, and the generator keeps what is there."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
SECRETS = ("STREAMS_AUTH_TOKEN", "STREAMS_SECRET", "PG_PASSWORD", "CONNECT_DB_PASSWORD", "PGPASSWORD")


def generate(target: Path, **env: str) -> dict[str, str]:
    subprocess.run(
        ["bash", str(ROOT / "ops" / "compose-secrets.sh")],
        env={"PATH": os.environ["PATH"], "COMPOSE_SECRETS_FILE": str(target), **env},
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return dict(line.split("=", 1) for line in target.read_text().splitlines())


def test_the_compose_file_has_no_default_secret_and_no_password_in_a_dsn() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    seen = 0
    for name, service in compose["services"].items():
        environment = service.get("environment") or {}
        for key, value in environment.items():
            if key in SECRETS:
                seen += 1
                assert re.fullmatch(r"\$\{\w+:\?[^}]+\}", str(value)), (name, key, value)
            if key == "PG_DSN":
                assert "@" in value and ":" not in value.split("//", 1)[1].split("@", 1)[0], value
    assert seen >= 6  # postgres, connect, the workers (token, secret, password), prometheus


def test_the_generator_makes_private_distinct_values_once(tmp_path: Path) -> None:
    target = tmp_path / ".env"
    first = generate(target)
    assert set(first) == {"STREAMS_AUTH_TOKEN", "STREAMS_SECRET", "PG_PASSWORD"}
    assert len(set(first.values())) == 3 and all(re.fullmatch(r"[0-9a-f]{32,64}", v) for v in first.values())
    assert len(first["STREAMS_SECRET"]) == 64
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert generate(target) == first  # kept, not regenerated


def test_a_value_from_the_environment_is_taken(tmp_path: Path) -> None:
    assert generate(tmp_path / ".env", STREAMS_AUTH_TOKEN="mine")["STREAMS_AUTH_TOKEN"] == "mine"
