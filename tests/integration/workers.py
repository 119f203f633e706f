"""Real worker processes (`faust -A streams.app worker`) for integration and fault tests."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from streams.client import CommandClient
from streams.config import Settings
from streams.contexts.orders import PlaceOrder


def wait_until(check: Callable[[], Any], what: str, timeout: float = 120.0, every: float = 1.0) -> Any:
    """`check()` once it is truthy, asked every `every` seconds (AssertionError naming `what`
    and the last answer after `timeout`). The one way the integration tests wait on a condition."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}"[:3000])


async def async_wait_until(
    check: Callable[[], Any], what: str, timeout: float = 120.0, every: float = 1.0
) -> Any:
    """`wait_until` inside an event loop: `check()` (awaited when it returns an awaitable) once
    it is truthy; the loop runs the other tasks in between."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if inspect.isawaitable(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(every)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}"[:3000])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Deployment:
    """One isolated deployment: its own topic prefix, app id and data directory."""

    prefix: str
    data_dir: Path
    partitions: int = 4
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)
    granted: set[str] = field(default_factory=set)
    """The contexts the worker principal has been granted (`STREAMS_TEST_STACK=secure`)."""

    def env(self, worker_id: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            STREAMS_TOPIC_PREFIX=f"{self.prefix}.",
            STREAMS_APP_ID=self.prefix,
            STREAMS_DATA_DIR=str(self.data_dir),
            STREAMS_PARTITIONS=str(self.partitions),
            STREAMS_WORKER_ID=worker_id,
            STREAMS_WEB_PORT=str(self.ports[worker_id]),
        )
        env.update(self._worker_principal())
        env.update(self.extra_env)
        return env

    def _worker_principal(self) -> dict[str, str]:
        """On a secured stack (`STREAMS_TEST_WORKER_USER`, set by tests/conftest.py's `secure`
        mode): the worker principal's credentials, after granting it this deployment's ACLs as
        `streams acls apply --worker` does (the harness itself is the admin principal)."""
        user = os.environ.get("STREAMS_TEST_WORKER_USER")
        if not user or "KAFKA_SASL_USERNAME" in self.extra_env:
            return {}
        settings = self.settings()
        if not set(settings.contexts) <= self.granted:
            from streams.cli.acls import deployment
            from streams.kafka import acls
            from streams.wire.acls import worker_grants

            acls.apply(settings, acls.bindings(f"User:{user}", worker_grants(deployment(settings))))
            self.granted |= set(settings.contexts)
        return {
            "KAFKA_SASL_USERNAME": user,
            "KAFKA_SASL_PASSWORD": "",
            "KAFKA_SASL_PASSWORD_FILE": os.environ["STREAMS_TEST_WORKER_PASSWORD_FILE"],
        }

    def cli_env(self) -> dict[str, str]:
        """The environment of a `streams ...` command run against this deployment."""
        env = dict(os.environ)
        env.update(
            STREAMS_TOPIC_PREFIX=f"{self.prefix}.",
            STREAMS_APP_ID=self.prefix,
            STREAMS_DATA_DIR=str(self.data_dir),
            STREAMS_PARTITIONS=str(self.partitions),
        )
        env.update(self.extra_env)
        return env

    def settings(self) -> Settings:
        """The settings of this deployment's clients: its workers' environment (`extra_env`
        included, so a client declares the topics as the workers do: same record limits)."""
        with mock.patch.dict(os.environ, self.cli_env()):
            return Settings()

    def start(self, worker_id: str = "w1") -> subprocess.Popen[bytes]:
        self.ports.setdefault(worker_id, free_port())
        log = open(self.data_dir / f"{worker_id}.log", "ab")  # noqa: SIM115 - owned by the process
        proc = subprocess.Popen(
            [sys.executable, "-m", "faust", "-A", "streams.app", "worker", "-l", "info"],
            env=self.env(worker_id),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.workers[worker_id] = proc
        return proc

    def url(self, worker_id: str = "w1") -> str:
        """The worker's base URL (https when its environment gives it a certificate)."""
        scheme = "https" if self.extra_env.get("STREAMS_WEB_TLS_CERT") else "http"
        return f"{scheme}://127.0.0.1:{self.ports[worker_id]}"

    def tls(self) -> ssl.SSLContext | None:
        """What verifies an https worker (`STREAMS_WEB_CA_FILE`), None for http ones."""
        if not self.extra_env.get("STREAMS_WEB_TLS_CERT"):
            return None
        return ssl.create_default_context(cafile=self.extra_env.get("STREAMS_WEB_CA_FILE") or None)

    def wait_healthy(self, worker_id: str = "w1", timeout: float = 180.0) -> None:
        """Until the worker's `/health` answers 200 (RuntimeError at once if it exited,
        TimeoutError with its log's tail after `timeout`)."""
        url = f"{self.url(worker_id)}/health"
        tls = self.tls()

        def healthy() -> bool:
            if self.workers[worker_id].poll() is not None:
                raise RuntimeError(f"worker {worker_id} exited: {self.log_tail(worker_id)}")
            try:
                with urllib.request.urlopen(url, timeout=2, context=tls) as response:
                    return bool(response.status == 200)
            except OSError:
                return False

        try:
            wait_until(healthy, f"worker {worker_id} healthy", timeout, every=0.3)
        except AssertionError:
            raise TimeoutError(f"worker {worker_id} not healthy: {self.log_tail(worker_id)}") from None

    def assigned(self, worker_id: str, stage: str = "orders") -> set[int]:
        """Partitions the worker's `stage` last logged as assigned (a stage logs every assignment
        and revocation)."""
        latest: set[int] = set()
        path = self.data_dir / f"{worker_id}.log"
        for line in path.read_text(errors="replace").splitlines() if path.exists() else []:
            for word, change in (("assigned", "set"), ("revoked", "remove")):
                if f"{stage}: {word}" in line:
                    found = {int(p) for p in line.split(word, 1)[1].strip(" []").split(",") if p.strip()}
                    latest = found if change == "set" else latest - found
        return latest

    def kill(self, worker_id: str = "w1", sig: int = signal.SIGKILL) -> None:
        proc = self.workers.pop(worker_id, None)
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def stop_all(self) -> None:
        for worker_id in list(self.workers):
            self.kill(worker_id, signal.SIGTERM)

    def log_tail(self, worker_id: str, lines: int = 40) -> str:
        path = self.data_dir / f"{worker_id}.log"
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@contextmanager
def deployed(data_dir: Path, letter: str, **extra_env: str) -> Iterator[Deployment]:
    """One healthy worker `w1` of a new deployment (prefix `<letter><random>`), stopped after."""
    dep = Deployment(prefix=f"{letter}{uuid.uuid4().hex[:8]}", data_dir=data_dir, extra_env=extra_env)
    dep.start("w1")
    dep.wait_healthy("w1")
    try:
        yield dep
    finally:
        dep.stop_all()


@contextmanager
def running(dep: Deployment, *worker_ids: str) -> Iterator[Deployment]:
    """`dep` with these workers started and healthy, every worker stopped after."""
    for worker_id in worker_ids:
        dep.start(worker_id)
    try:
        for worker_id in worker_ids:
            dep.wait_healthy(worker_id)
        yield dep
    finally:
        dep.stop_all()


def json_answer(request: urllib.request.Request | str, timeout: float = 30) -> tuple[int, Any]:
    """Send `request` (a URL: GET) and the answer's status and JSON body, errors included."""
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def module_deployment(letter: str, **extra_env: str) -> Any:
    """A module-scoped `deployment` fixture: one healthy worker of a new deployment with
    `extra_env`, for every test of the module (`deployment = module_deployment("t", ...)`)."""

    @pytest.fixture(scope="module")
    def deployment(stack: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
        with deployed(tmp_path_factory.mktemp("worker"), letter, **extra_env) as dep:
            yield dep

    return deployment


@contextmanager
def warmed_client(settings: Settings, attempts: int = 5) -> Iterator[CommandClient]:
    """An orders CommandClient whose first command waited out the workers' partition assignment.

    Topics a worker has just created may still be electing leaders, hence the attempts."""
    for attempt in range(attempts):
        try:
            client = CommandClient(settings, "orders")
            break
        except Exception:
            if attempt == attempts - 1:
                raise
            time.sleep(2)  # a retry's back-off (the error is what is waited out), not a wait on a state
    with client:
        client.execute("warm-up", PlaceOrder("c-0", "EUR"), timeout=120)
        yield client
