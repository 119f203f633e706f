"""Benchmark (e): the seed's own design, a PostgreSQL event store driven by the same commands.

The seed keeps every event as a row of `EventStore(EventID SERIAL PRIMARY KEY, AggregateID,
AggregateType, EventType, EventData JSONB, Metadata JSONB, Timestamp, Version)` and rebuilds an
aggregate's state by loading its events and folding them (its StateRebuilder). Here, per command:

1. `SELECT EventType, EventData ... WHERE AggregateID = %s ORDER BY Version` (the index of the
   unique `(AggregateID, Version)` constraint serves it);
2. fold them with our `evolve` (`context.fold`) and call our `decide`;
3. one transaction with one INSERT per event at version `current + i`: the unique constraint is the
   optimistic concurrency check (a concurrent writer's INSERT fails with a unique violation).

A pool of connections sized to the machine's cores (`BENCH_SEED_POOL`, default `os.cpu_count()`),
like the seed's own `pg.Pool`: the commands are spread over that many threads, each on its own
connection, by aggregate (hash of the id), so one aggregate's commands stay in order and the
optimistic concurrency check never has to retry, as with a queue partitioned by aggregate in front
of the seed's handlers. PostgreSQL's round trips release the GIL, so the connections overlap. Aggregate ids
are our strings (`order-17`), not UUIDs. The table lives in schema `bench_seed` so it never meets
the Connect sink tables; it is recreated on every run.
"""

from __future__ import annotations

import json
import os
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from streams.contexts.orders import context
from streams.core.decider import Rejected
from streams.wire.schemas import to_record

SCHEMA = "bench_seed"
POOL = int(os.environ.get("BENCH_SEED_POOL", "0")) or os.cpu_count() or 1
"""Connections (and threads) of e: the machine's cores unless BENCH_SEED_POOL says otherwise."""

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


def shards(commands: Sequence[tuple[str, Any]], pool: int) -> list[list[tuple[int, str, Any]]]:
    """`commands` (with their index) split over `pool` lists by aggregate, each in its order."""
    out: list[list[tuple[int, str, Any]]] = [[] for _ in range(pool)]
    for i, (aggregate_id, command) in enumerate(commands):
        out[zlib.crc32(aggregate_id.encode()) % pool].append((i, aggregate_id, command))
    return out


def seed_design(
    dsn: str,
    commands: Sequence[tuple[str, Any]],
    *,
    max_seconds: float = 0.0,
    on_progress: Callable[[int], None] = lambda _: None,
    pool: int = POOL,
) -> dict[str, Any]:
    """Commands/s of the seed's design over `commands` on `pool` connections (all of them, or as
    many as fit in `max_seconds` when > 0: the rate is then over the commands handled)."""
    setup = SeedEventStore(dsn)
    setup.reset()
    stores = [SeedEventStore(dsn) for _ in range(pool)]
    statuses: dict[str, int] = {}
    lock = threading.Lock()
    done = [0]
    failures: list[BaseException] = []
    started = time.perf_counter()

    def serve(store: SeedEventStore, mine: list[tuple[int, str, Any]]) -> None:
        try:
            for i, aggregate_id, command in mine:
                status = store.handle(aggregate_id, command, f"seed-{i}")
                with lock:
                    statuses[status] = statuses.get(status, 0) + 1
                    done[0] += 1
                    if done[0] % 1000 == 0:
                        on_progress(done[0])
                if max_seconds and time.perf_counter() - started > max_seconds:
                    return
        except BaseException as exc:  # reported by the caller's thread
            failures.append(exc)

    try:
        threads = [
            threading.Thread(target=serve, args=(store, mine), daemon=True)
            for store, mine in zip(stores, shards(commands, pool), strict=True)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        if failures:
            raise failures[0]
        rows = setup.count()
    finally:
        for store in [setup, *stores]:
            store.close()
    return {
        "commands": done[0],
        "seconds": elapsed,
        "commands_per_s": done[0] / elapsed,
        "statuses": statuses,
        "rows": rows,
        "pool": pool,
        "complete": done[0] == len(commands),
    }


if __name__ == "__main__":  # a quick look: python -m bench.seed
    from bench.traffic import commands
    from streams.config import Settings

    print(json.dumps(seed_design(Settings().pg_dsn, commands()[:5000]), indent=2))
