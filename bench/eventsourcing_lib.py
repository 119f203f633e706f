"""Benchmark (f): the `eventsourcing` library (PyPI) with its PostgreSQL backend, same orders logic.

An `eventsourcing` Aggregate whose command method calls our `decide` and whose one event class
applies our events with our `evolve`; an Application whose `execute` gets the aggregate from its
repository (the library loads the aggregate's stored events and replays them), runs the command
and saves. The library is configured through its environment variables
(`PERSISTENCE_MODULE=eventsourcing.postgres`, `POSTGRES_*`) with its defaults otherwise: no
snapshots, no aggregate cache. Its tables live in schema `bench_es` and are dropped on every run.
Aggregate ids are uuid5 of our ids (the library's default id type is UUID).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlparse
from uuid import NAMESPACE_URL, UUID, uuid5

import psycopg
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate

from streams.contexts.orders import context
from streams.core.decider import Rejected
from streams.wire.schemas import to_record

SCHEMA = "bench_es"


class Order(Aggregate):
    """Our order inside the library's aggregate: `state` is our OrderState."""

    def __init__(self, order_id: str) -> None:
        self.order_id = order_id
        self.state = context.initial_state

    @staticmethod
    def create_id(order_id: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"orders/{order_id}")

    class Decided(Aggregate.Event):
        """One of our events, by type name and fields."""

        event_type: str
        data: dict[str, Any]

        def apply(self, aggregate: Any) -> None:
            event = context.event_names[self.event_type](**self.data)
            aggregate.state = context.evolve(aggregate.state, event)

    def handle(self, command: Any) -> None:
        """Our decide; each resulting event is triggered (and so applied with our evolve)."""
        for event in context.decide(self.state, command):
            self.trigger_event(self.Decided, event_type=type(event).__name__, data=to_record(event))


class Orders(Application):
    """Load, decide, save: one command per call."""

    name = "BenchOrders"

    def execute(self, order_id: str, command: Any) -> str:
        try:
            order: Order = self.repository.get(Order.create_id(order_id))
        except AggregateNotFoundError:
            order = Order(order_id)
        try:
            order.handle(command)
        except Rejected:
            return "rejected"
        self.save(order)
        return "accepted"


def library_env(dsn: str) -> dict[str, str]:
    """The library's documented environment variables for its PostgreSQL backend."""
    url = urlparse(dsn)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": url.path.lstrip("/"),
        "POSTGRES_HOST": url.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(url.port or 5432),
        "POSTGRES_USER": url.username or "",
        "POSTGRES_PASSWORD": url.password or "",
        "POSTGRES_SCHEMA": SCHEMA,
    }


def _reset(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        conn.execute(f"CREATE SCHEMA {SCHEMA}")


def eventsourcing_library(
    dsn: str,
    commands: Sequence[tuple[str, Any]],
    *,
    max_seconds: float = 0.0,
    on_progress: Callable[[int], None] = lambda _: None,
) -> dict[str, Any]:
    """Commands/s of the library over `commands` (or the prefix handled within `max_seconds`)."""
    _reset(dsn)
    app = Orders(env=library_env(dsn))
    statuses: dict[str, int] = {}
    done = 0
    started = time.perf_counter()
    try:
        for aggregate_id, command in commands:
            status = app.execute(aggregate_id, command)
            statuses[status] = statuses.get(status, 0) + 1
            done += 1
            if done % 1000 == 0:
                on_progress(done)
                if max_seconds and time.perf_counter() - started > max_seconds:
                    break
        elapsed = time.perf_counter() - started
    finally:
        app.close()
    return {
        "commands": done,
        "seconds": elapsed,
        "commands_per_s": done / elapsed,
        "statuses": statuses,
        "complete": done == len(commands),
    }
