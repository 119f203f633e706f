"""What runs through every scenario: a steady orders command load, probe commands that time the
end-to-end latency, a read_committed reader of the events topic that records what it saw, and
the devices' telemetry (readings stamped with the wall clock, round-robin over registered devices)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from streams.client import CommandClient, RecordSender
from streams.config import Settings
from streams.contexts.devices import TelemetryReading
from streams.contexts.orders import AddItem, PlaceOrder
from streams.kafka import clients
from streams.kafka.clients import take
from streams.wire.topics import ContextTopics

log = logging.getLogger(__name__)

AGGREGATES_PER_ROUND = 100
COMMANDS_PER_AGGREGATE = 20  # an order, then items: within what an order accepts
SKUS = [("apple", 100), ("pear", 120), ("plum", 90), ("fig", 300), ("kiwi", 80)]


def command_for(n: int) -> tuple[str, object]:
    """The `n`th command of the load: rounds of 100 orders, each placed, then given 19 items,
    round-robin over the round's orders (so one order's commands stay in order)."""
    round_, within = divmod(n, AGGREGATES_PER_ROUND * COMMANDS_PER_AGGREGATE)
    step, a = divmod(within, AGGREGATES_PER_ROUND)
    aggregate = f"chaos-{round_}-{a}"
    if step == 0:
        return aggregate, PlaceOrder(f"customer-{a % 37}", "EUR")
    sku, price = SKUS[(a + step) % len(SKUS)]
    return aggregate, AddItem(sku, 1 + step % 3, price)


def reading_for(n: int, devices: list[str], ts: int) -> tuple[str, TelemetryReading]:
    """The `n`th reading of the telemetry load: devices round-robin, values multiples of 0.5 (so
    a window's sum is exact in any order of folding)."""
    return devices[n % len(devices)], TelemetryReading("temp", 20.0 + (n % 13) * 0.5, ts)


@dataclass
class Probe:
    """One probe command: when it was sent (monotonic) and how long its result took (None:
    none within the timeout)."""

    sent_at: float
    latency_s: float | None


@dataclass
class Load:
    """The load's three threads; `start`, then `stop` after the scenarios."""

    settings: Settings
    rate: float = 50.0
    probe_every_s: float = 0.5
    probe_timeout_s: float = 180.0
    devices: list[str] = field(default_factory=list)
    """Registered devices the telemetry thread sends readings for (none: no telemetry)."""
    telemetry_rate: float = 200.0
    sent: list[str] = field(default_factory=list)
    readings_sent: int = 0
    probes: list[Probe] = field(default_factory=list)
    seen: set[tuple[int, int]] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for target in (self._commands, self._probe, self._read, self._telemetry):
            thread = threading.Thread(target=self._guarded(target), name=target.__name__, daemon=True)
            thread.start()
            self._threads.append(thread)

    stuck: list[str] = field(default_factory=list)
    """Threads that did not end within `stop`'s timeout (a client call that hangs)."""

    def stop(self, timeout_s: float = 60.0) -> None:
        """Stop the threads, waiting `timeout_s` for them all (not each: three threads each
        waited for up to four minutes once a client call hung); one still running then is
        named in `stuck` and left behind (they are daemons)."""
        self._stop.set()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                self.stuck.append(thread.name)

    def _guarded(self, target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except Exception as exc:  # reported by the checker: the load must not die silently
                log.exception("load thread failed")
                self.errors.append(f"{type(exc).__name__}: {exc}")

        return run

    def _commands(self) -> None:
        client = CommandClient(self.settings, "orders", wait=False)
        started = time.monotonic()
        n = 0
        try:
            while not self._stop.is_set():
                aggregate, command = command_for(n)
                command_id, _ = client.send(aggregate, command)
                self.sent.append(command_id)
                n += 1
                ahead = started + n / self.rate - time.monotonic()
                if ahead > 0:
                    self._stop.wait(ahead)
        finally:
            client.close()

    def _telemetry(self) -> None:
        if not self.devices:
            return
        with RecordSender(self.settings, "devices") as sender:
            started = time.monotonic()
            while not self._stop.is_set():
                ts = int(time.time() * 1000)
                device, reading = reading_for(self.readings_sent, self.devices, ts)
                sender.send(device, reading, timestamp_ms=ts)
                self.readings_sent += 1
                ahead = started + self.readings_sent / self.telemetry_rate - time.monotonic()
                if ahead > 0:
                    self._stop.wait(ahead)

    def _probe(self) -> None:
        with CommandClient(self.settings, "orders") as client:
            n = 0
            while not self._stop.is_set():
                sent_at = time.monotonic()
                command_id, future = client.send(f"probe-{n}", PlaceOrder("probe", "EUR"))
                assert future is not None
                acknowledged = self._acknowledged(client, sent_at)
                if not acknowledged and not self._stop.is_set():
                    client.forget(command_id, future)
                    self.probes.append(Probe(sent_at, None))
                while acknowledged and not self._stop.is_set():  # a stop does not wait for it
                    try:
                        future.result(timeout=0.5)
                        self.probes.append(Probe(sent_at, time.monotonic() - sent_at))
                        break
                    except TimeoutError:
                        if time.monotonic() - sent_at >= self.probe_timeout_s:
                            client.forget(command_id, future)
                            self.probes.append(Probe(sent_at, None))
                            break
                n += 1
                self._stop.wait(max(0.0, sent_at + self.probe_every_s - time.monotonic()))

    def _acknowledged(self, client: CommandClient, sent_at: float) -> bool:
        """Whether the probe in flight was acknowledged within the probe timeout. While no
        partition of the commands topic has two in-sync replicas (two nodes away, or one frozen
        while another rejoins) a write waits; that is a slow probe, not a failed load."""
        while not self._stop.is_set() and time.monotonic() - sent_at < self.probe_timeout_s:
            try:
                client.flush(timeout=1.0)
                return True
            except TimeoutError:
                continue
        return False

    def _read(self) -> None:
        consumer = clients.reader(self.settings)
        consumer.subscribe([ContextTopics("orders", self.settings.topic_prefix).events])
        try:
            while not self._stop.is_set():
                for msg in take(consumer, 1000, 0.25):
                    if msg.error() is None:
                        self.seen.add((msg.partition(), msg.offset()))
        finally:
            consumer.close()

    def window(self, since: float) -> list[Probe]:
        """The probes that were waiting for their result at `since` (monotonic) or sent later."""
        return [p for p in self.probes if p.sent_at + (p.latency_s or self.probe_timeout_s) >= since]
