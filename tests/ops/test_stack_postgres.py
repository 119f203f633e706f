"""The local stack's PostgreSQL password (`ops/stack.sh up postgres`): no fixed password, one
generated once per data dir into `<data>/postgres.password` (mode 600), the one Connect's secrets
file holds; a data dir made when the role had the old fixed password takes the generated one on
`up`. Its own data directory and port: nothing else of a stack is started."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SideStack:
    """`ops/stack.sh` on a data dir and a PostgreSQL port of its own."""

    def __init__(self, data: Path) -> None:
        self.data, self.port = data, free_port()

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PG_PASSWORD", "PGPASSWORD")}
        env.update(STREAMS_STACK_DATA=str(self.data), PG_PORT=str(self.port))
        return subprocess.run(
            ["bash", str(ROOT / "ops" / "stack.sh"), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )

    def logs_in(self, password: str) -> bool:
        """Whether role `streams` logs in with `password`."""
        try:
            dsn = psycopg.conninfo.make_conninfo(
                host="127.0.0.1", port=self.port, dbname="streams", user="streams", password=password
            )
            with psycopg.connect(dsn, connect_timeout=10) as conn:
                return conn.execute("select 1").fetchone() == (1,)
        except psycopg.OperationalError:
            return False


@pytest.fixture
def side() -> Iterator[SideStack]:
    # a folder the postgres user can reach (as root, initdb and the server run as that user)
    data = Path(tempfile.mkdtemp(prefix="streams-pg-test-"))
    data.chmod(0o755)
    stack = SideStack(data)
    try:
        up = stack.run("up", "postgres")
        assert up.returncode == 0, up.stderr
        yield stack
    finally:
        stack.run("down", "postgres")
        shutil.rmtree(data, ignore_errors=True)


def secrets_password(data: Path) -> str:
    rendered = (data / "conf" / "connect-secrets.properties").read_text().splitlines()
    return next(line.split("=", 1)[1] for line in rendered if line.startswith("password="))


def test_the_password_is_generated_once_mode_600_and_is_connects(side: SideStack) -> None:
    file = side.data / "postgres.password"
    password = file.read_text().strip()
    assert len(password) >= 32 and password != "streams"
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    assert side.logs_in(password) and not side.logs_in("streams")
    assert side.run("render", "connect").returncode == 0
    assert secrets_password(side.data) == password  # what Connect's FileConfigProvider reads
    env = side.run("env")
    assert password not in env.stdout and f"pg_password_file={file}" in env.stdout
    assert side.run("up", "postgres").returncode == 0
    assert file.read_text().strip() == password  # once per data dir


def test_a_data_dir_made_with_the_fixed_password_takes_a_generated_one_on_up(side: SideStack) -> None:
    # the state of a data dir made before: the role's password `streams`, no password file
    with psycopg.connect(
        psycopg.conninfo.make_conninfo(
            host="127.0.0.1",
            port=side.port,
            dbname="streams",
            user="streams",
            password=(side.data / "postgres.password").read_text().strip(),
        ),
        autocommit=True,
    ) as conn:
        conn.execute("alter role streams password 'streams'")
    (side.data / "postgres.password").unlink()
    assert side.logs_in("streams")
    up = side.run("up", "postgres")  # already running: the role follows the new file
    assert up.returncode == 0, up.stderr
    password = (side.data / "postgres.password").read_text().strip()
    assert side.logs_in(password) and not side.logs_in("streams")
