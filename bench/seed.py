"""Benchmark (e): the seed's own design, a PostgreSQL event store driven by the same commands.

The seed keeps every event as a row of `EventStore(EventID SERIAL PRIMARY KEY, AggregateID,
AggregateType, EventType, EventData JSONB, Metadata JSONB, Timestamp, Version)` and rebuilds an
aggregate's state by loading its events and folding them (its StateRebuilder). Here, per command:

1. `SELECT EventType, EventData ... WHERE AggregateID = %s ORDER BY Version` (the index of the
   unique `(AggregateID, Version)` constraint serves it);
2. fold them with our `evolve` (`context.fold`) and call our `decide`;
3. one transaction with one INSERT per event at version `current + i`: the unique constraint is the
   optimistic concurrency check (a concurrent writer's INSERT fails with a unique violation).

One connection, like the seed's code. Aggregate ids are our strings (`order-17`), not UUIDs. The
table lives in schema `bench_seed` so it never meets the Connect sink tables; it is recreated on
every run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from streams.contexts.orders import context
from streams.core.decider import Rejected
from streams.wire.schemas import to_record

SCHEMA = "bench_seed"

DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
DROP TABLE IF EXISTS {SCHEMA}.EventStore;
CREATE TABLE {SCHEMA}.EventStore (
    EventID SERIAL PRIMARY KEY,
    AggregateID VARCHAR(255) NOT NULL,
    AggregateType VARCHAR(255) NOT NULL,
    EventType VARCHAR(255) NOT NULL,
    EventData JSONB NOT NULL,
    Metadata JSONB,
    Timestamp TIMESTAMP DEFAULT NOW(),
    Version INT NOT NULL,
    UNIQUE (AggregateID, Version)
);
CREATE INDEX idx_aggregate_type ON {SCHEMA}.EventStore (AggregateType);
CREATE INDEX idx_event_type ON {SCHEMA}.EventStore (EventType);
"""

LOAD = f"SELECT EventType, EventData FROM {SCHEMA}.EventStore WHERE AggregateID = %s ORDER BY Version"
INSERT = (
    f"INSERT INTO {SCHEMA}.EventStore (AggregateID, AggregateType, EventType, EventData, Metadata, Version)"
    " VALUES (%s, %s, %s, %s, %s, %s)"
)


class ConcurrencyError(Exception):
    """Another writer appended to the aggregate first."""


class SeedEventStore:
    """The seed's EventStore table behind one connection."""

    def __init__(self, dsn: str) -> None:
        self.conn = psycopg.connect(dsn, autocommit=True)
        self.events = context.event_names

    def reset(self) -> None:
        """Recreate the table (empty)."""
        with self.conn.cursor() as cur:
            cur.execute(DDL)

    def load(self, aggregate_id: str) -> tuple[int, Any]:
        """(version, state): the aggregate's events read back and folded (the StateRebuilder)."""
        with self.conn.cursor() as cur:
            rows = cur.execute(LOAD, (aggregate_id,)).fetchall()
        events = [self.events[event_type](**data) for event_type, data in rows]
        return len(events), context.fold(events)

    def append(self, aggregate_id: str, version: int, events: Sequence[Any], command_id: str) -> None:
        """INSERT each event at version+1.. in one transaction; a taken version is a conflict."""
        meta = Jsonb({"command_id": command_id})
        try:
            with self.conn.transaction(), self.conn.cursor() as cur:
                for i, event in enumerate(events, start=1):
                    cur.execute(
                        INSERT,
                        (
                            aggregate_id,
                            context.aggregate_type,
                            type(event).__name__,
                            Jsonb(to_record(event)),
                            meta,
                            version + i,
                        ),
                    )
        except psycopg.errors.UniqueViolation as exc:
            raise ConcurrencyError(f"{aggregate_id} moved past version {version}") from exc

    def handle(self, aggregate_id: str, command: Any, command_id: str) -> str:
        """One command: load, fold, decide, append. Returns the status."""
        version, state = self.load(aggregate_id)
        try:
            events = context.decide(state, command)
        except Rejected:
            return "rejected"
        self.append(aggregate_id, version, events, command_id)
        return "accepted"

    def count(self) -> int:
        with self.conn.cursor() as cur:
            row = cur.execute(f"SELECT count(*) FROM {SCHEMA}.EventStore").fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        self.conn.close()


def seed_design(
    dsn: str,
    commands: Sequence[tuple[str, Any]],
    *,
    max_seconds: float = 0.0,
    on_progress: Callable[[int], None] = lambda _: None,
) -> dict[str, Any]:
    """Commands/s of the seed's design over `commands` (all of them, or as many as fit in
    `max_seconds` when > 0: the rate is then over the prefix that was handled)."""
    store = SeedEventStore(dsn)
    store.reset()
    statuses: dict[str, int] = {}
    started = time.perf_counter()
    done = 0
    try:
        for i, (aggregate_id, command) in enumerate(commands):
            status = store.handle(aggregate_id, command, f"seed-{i}")
            statuses[status] = statuses.get(status, 0) + 1
            done += 1
            if done % 1000 == 0:
                on_progress(done)
                if max_seconds and time.perf_counter() - started > max_seconds:
                    break
        elapsed = time.perf_counter() - started
        rows = store.count()
    finally:
        store.close()
    return {
        "commands": done,
        "seconds": elapsed,
        "commands_per_s": done / elapsed,
        "statuses": statuses,
        "rows": rows,
        "complete": done == len(commands),
    }


if __name__ == "__main__":  # a quick look: python -m bench.seed
    from bench.traffic import commands
    from streams.config import Settings

    print(json.dumps(seed_design(Settings().pg_dsn, commands()[:5000]), indent=2))
