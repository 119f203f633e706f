"""A fleet of devices on a real deployment: registration, readings, and reading back what came out."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from streams.client import CommandClient, RecordSender, read_topic
from streams.config import Settings
from streams.contexts.devices import ConfigureThresholds, RegisterDevice, TelemetryReading
from streams.wire import headers as h
from streams.wire.topics import ContextTopics
from tests.integration.workers import wait_until

WINDOW_MS = 10_000


def aligned_past(seconds: int) -> int:
    """A window boundary `seconds` (at least) before now, in epoch ms."""
    t = int(time.time() * 1000) - seconds * 1000
    return t - t % WINDOW_MS


def metric_value(url: str, name: str, **labels: str) -> float:
    """The sum of a Prometheus metric's samples with these labels on a worker's /metrics."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


@dataclass
class Fleet:
    """Devices of one deployment (`settings`, worker at `url`)."""

    settings: Settings
    url: str
    prefix: str = "dev"
    registered: list[str] = field(default_factory=list)

    @property
    def topics(self) -> ContextTopics:
        return ContextTopics("devices", self.settings.topic_prefix)

    def register(
        self, devices: Iterable[str], site: str = "plant-1", silence_after_s: int = 3600, **thresholds: Any
    ) -> None:
        """Register devices (and configure `thresholds` for `temp` when given); wait for the
        window stage's join table to have read them."""
        devices = list(devices)
        table_before = metric_value(self.url, "streams_window_records_total", outcome="table")
        with CommandClient(self.settings, "devices") as client:
            futures = [client.send(d, RegisterDevice(site, d, silence_after_s))[1] for d in devices]
            if thresholds:
                futures += [client.send(d, ConfigureThresholds("temp", **thresholds))[1] for d in devices]
            client.flush()
            for future in futures:
                assert future is not None
                result = future.result(timeout=180)
                assert result.accepted, result
        self.registered += devices
        wait_until(
            lambda: (
                metric_value(self.url, "streams_window_records_total", outcome="table")
                >= table_before + len(devices)
            ),
            "the window stage's join table",
        )

    def send(self, readings: Iterable[tuple[str, str, float, int]]) -> int:
        """Produce (device, metric, value, event time) readings, Kafka timestamp = event time."""
        n = 0
        with RecordSender(self.settings, "devices") as sender:
            for device, metric, value, ts in readings:
                sender.send(device, TelemetryReading(metric, value, ts), timestamp_ms=ts)
                n += 1
        return n

    def events(self, idle: float = 2.0) -> list[tuple[str, str, Any]]:
        """Every committed event: (device, event type, decoded event)."""
        with CommandClient(self.settings, "devices", wait=False) as client:
            codec = client.runtime.codec
            return [
                (
                    msg.key().decode(),
                    h.as_dict(msg.headers())[h.EVENT_TYPE],
                    codec.decode(msg.value()).message,
                )
                for msg in read_topic(self.settings, self.topics.events, idle_timeout=idle)
            ]

    def windows(
        self, events: list[tuple[str, str, Any]] | None = None
    ) -> dict[tuple[str, str, int], list[Any]]:
        """The recorded windows by (device, metric, start): every TelemetryWindowRecorded of each."""
        out: dict[tuple[str, str, int], list[Any]] = defaultdict(list)
        for device, kind, event in events if events is not None else self.events():
            if kind == "TelemetryWindowRecorded":
                out[(device, event.metric, event.window_start)].append(event)
        return out

    def wait_windows(
        self, devices: Iterable[str], count: int, timeout: float = 120.0
    ) -> dict[tuple[str, str, int], list[Any]]:
        """The recorded windows of `devices`, once there are `count` of them."""
        wanted = set(devices)

        def ready() -> dict[tuple[str, str, int], list[Any]] | None:
            found = {k: v for k, v in self.windows().items() if k[0] in wanted}
            return found if len(found) >= count else None

        found = wait_until(ready, f"{count} windows", timeout)
        assert isinstance(found, dict)
        return found

    def dead_letters(self, topic: str, idle: float = 1.5) -> list[dict[str, str]]:
        """The headers of a DLQ topic's records (plus `key`)."""
        return [
            {**h.as_dict(msg.headers()), "key": (msg.key() or b"").decode("utf-8", "replace")}
            for msg in read_topic(self.settings, topic, idle_timeout=idle)
        ]

    def view(self, view: str, key: str) -> Any:
        """A view document over HTTP (None: 404)."""
        quoted = urllib.parse.quote(key, safe="")
        try:
            with urllib.request.urlopen(f"{self.url}/devices/views/{view}/{quoted}", timeout=10) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise
