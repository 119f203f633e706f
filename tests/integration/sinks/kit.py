"""The sink tests' kit: a private Kafka Connect worker, a deployment's sink settings (a PostgreSQL
schema of its own, dropped after), SQL on it, and a wait that fails at once when a sink task fails.

The `connect` fixture (a worker per module) is in this folder's conftest.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import psycopg

from streams.config import Settings
from streams.sinks.connect import remove, status
from tests.conftest import ROOT
from tests.integration.workers import Deployment, free_port, wait_until


class PrivateConnect:
    """A Kafka Connect distributed worker of our own (restartable), with the FileConfigProvider
    and a credentials file, as ops/stack.sh writes them."""

    def __init__(self, workdir: Path, bootstrap: str, pg_dsn: str) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        suffix = uuid.uuid4().hex[:8]
        self.conf = Path(os.environ.get("STREAMS_STACK_DATA", ROOT / ".stack")) / "conf"  # as ops/stack.env
        shared = (self.conf / "connect-distributed.properties").read_text()
        props = []
        overrides = {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-connect-{suffix}",
            "listeners": f"http://127.0.0.1:{self.port}",
            "rest.advertised.port": str(self.port),
            "config.storage.topic": f"_test-connect-{suffix}-configs",
            "offset.storage.topic": f"_test-connect-{suffix}-offsets",
            "status.storage.topic": f"_test-connect-{suffix}-status",
            "offset.storage.partitions": "1",
            "config.providers": "file",
            "config.providers.file.class": "org.apache.kafka.common.config.provider.FileConfigProvider",
        }
        pg = psycopg.conninfo.conninfo_to_dict(pg_dsn)
        self.secrets = workdir / "connect-secrets.properties"
        self.secrets.touch(mode=0o600)
        self.secrets.write_text(f"username={pg['user']}\npassword={pg['password']}\n")
        for line in shared.splitlines():
            key = line.split("=", 1)[0].strip()
            if key not in overrides:
                props.append(line)
        props += [f"{k}={v}" for k, v in overrides.items()]
        self.props = workdir / "connect.properties"
        self.props.write_text("\n".join(props) + "\n")
        env = subprocess.run(
            ["bash", "-c", "source ops/stack.env; echo $STREAMS_STACK_HOME/kafka-$KAFKA_VERSION/lib"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        self.lib = env.stdout.strip()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 300) -> None:
        log = open(self.workdir / "connect.log", "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [
                "java",
                "-Xms128m",
                "-Xmx512m",
                f"-Dlog4j2.configurationFile={self.conf / 'log4j2.properties'}",
                "-Djava.awt.headless=true",
                "-cp",
                f"{self.lib}/*",
                "org.apache.kafka.connect.cli.ConnectDistributed",
                str(self.props),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        # a JVM start with a plugin scan: up to minutes on a loaded two-core machine (as the
        # stack's own Connect, STACK_START_TIMEOUT)
        try:
            wait_until(self._ready, f"Connect worker on port {self.port}", timeout)
        except BaseException:  # not left running behind a failed fixture
            self.stop()
            raise

    def _ready(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, self.log_tail()
        try:
            resp = httpx.get(f"{self.url}/connector-plugins", timeout=2)
        except httpx.HTTPError:
            return False
        return resp.status_code == 200 and "JdbcSinkConnector" in resp.text

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None

    def log_tail(self, lines: int = 60) -> str:
        path = self.workdir / "connect.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


@contextmanager
def sink_settings(deployment: Deployment, connect: PrivateConnect, **overrides: Any) -> Iterator[Settings]:
    """The deployment's settings with `connect` and a PostgreSQL schema named after the deployment;
    the connectors and the schema are removed after."""
    settings = replace(
        deployment.settings(),
        connect_url=connect.url,
        sink_schema=deployment.prefix,
        connect_secrets=str(connect.secrets),
        **overrides,
    )
    try:
        yield settings
    finally:
        remove(settings)
        with psycopg.connect(settings.pg_dsn, autocommit=True) as conn:
            conn.execute(f"drop schema if exists {settings.sink_schema} cascade".encode())


def query(settings: Settings, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Rows of `sql`, in which `{s}` names the deployment's schema."""
    with psycopg.connect(settings.pg_dsn, autocommit=True) as conn:
        return conn.execute(sql.replace("{s}", settings.sink_schema).encode(), args).fetchall()


def wait_for(settings: Settings, check: Callable[[], Any], what: str, timeout: float = 90.0) -> Any:
    """`wait_until(check)`, failing at once with its trace when a sink task has failed."""

    def checked() -> Any:
        failed = [t for entry in status(settings) for t in entry.get("tasks", []) if t["state"] == "FAILED"]
        assert not failed, failed[0]["trace"][:3000]
        return check()

    return wait_until(checked, what, timeout)
