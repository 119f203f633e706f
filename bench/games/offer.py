"""The games bench's load generator: pre-encoded commands produced at a fixed rate from a process
of its own.

The burst used to build, check and Avro-encode each `PlaceBet` in the loop that paced the sends,
and wait on a result future per bet in the same interpreter that followed the results: on the
shared 2-core machine it offered 446 bets/s of the 5,000 asked. Now the caller encodes every
command before the burst (`prepare`: the client's own checks and codec, once, off the clock), and
`offer` hands the records to a spawned process that only produces them (the project's idempotent
producer: batches, `linger.ms`), a tick's due records at a time, and reports each record's send
time (wall clock, comparable across processes) and the rate it reached. The caller's process
only follows the results.
"""

from __future__ import annotations

import multiprocessing
import time
import uuid
from dataclasses import dataclass
from typing import Any, NamedTuple

from streams.client import CommandClient
from streams.config import Settings
from streams.kafka import clients
from streams.wire import headers as h
from streams.wire.identifiers import check_identifier
from streams.wire.schemas import to_record

TICK_S = 0.002
"""How often the generator produces what fell due (records are produced in bursts of a tick)."""
SHORTFALL = 0.95
"""A run whose sent rate is below this share of the offered rate is marked invalid."""


class Encoded(NamedTuple):
    """One command record, ready to produce."""

    command_id: str
    key: bytes
    value: bytes


@dataclass(frozen=True, slots=True)
class Offered:
    """What the generator did."""

    sent_at: list[float]
    """Each record's produce call, wall clock (s), in order."""
    acked_s: float
    """From the first send until the broker acknowledged the last record."""
    undelivered: int

    def sent_rate(self) -> float:
        """Records per second over the sends (the last send's own tick included)."""
        span = self.sent_at[-1] - self.sent_at[0] if len(self.sent_at) > 1 else 0.0
        return len(self.sent_at) / (span + TICK_S)

    def shortfall(self, rate: float) -> str:
        """Why the run does not show `rate`/s offered (empty: it does)."""
        if self.undelivered:
            return f"{self.undelivered} records were never acknowledged"
        sent = self.sent_rate()
        if sent < SHORTFALL * rate:
            return f"the generator sent {sent:,.0f}/s of the {rate:,.0f}/s asked"
        return ""


def prepare(client: CommandClient, commands: list[tuple[str, Any]]) -> list[Encoded]:
    """Check and encode (aggregate id, command) pairs as `CommandClient.send` would."""
    runtime = client.runtime
    out = []
    for aggregate_id, command in commands:
        check_identifier("aggregate_id", aggregate_id)
        runtime.limits.check(type(command).__name__, to_record(command))
        out.append(Encoded(str(uuid.uuid4()), aggregate_id.encode(), runtime.codec.encode(command)))
    return out


def offer(settings: Settings, topic: str, records: list[Encoded], rate: float) -> Offered:
    """Produce `records` to `topic` at `rate`/s from a spawned process; what it did."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_produce, args=(settings, topic, records, rate, send), daemon=True)
    process.start()
    try:
        if not receive.poll(600):
            raise TimeoutError("the load generator did not report")
        offered: Offered = receive.recv()
    finally:
        process.join(timeout=30)
    return offered


def _produce(settings: Settings, topic: str, records: list[Encoded], rate: float, report: Any) -> None:
    producer = clients.producer(settings, errors_only=True)
    rows = [(r.key, r.value, [(h.COMMAND_ID, r.command_id.encode())]) for r in records]
    sent_at = [0.0] * len(rows)
    start = time.perf_counter()
    wall = time.time() - start  # wall clock = perf_counter + wall
    n = 0
    while n < len(rows):
        due = min(len(rows), int((time.perf_counter() - start) * rate) + 1)
        while n < due:
            key, value, headers = rows[n]
            try:
                producer.produce(topic, value, key, headers=headers)
            except BufferError:
                producer.poll(0.01)
                continue
            sent_at[n] = time.perf_counter() + wall
            n += 1
        producer.poll(0)
        ahead = start + n / rate - time.perf_counter()
        if ahead > 0:
            time.sleep(max(ahead, TICK_S))
    undelivered = producer.flush(120)
    report.send(Offered(sent_at, time.perf_counter() + wall - sent_at[0], undelivered))
