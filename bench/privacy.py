"""`python -m bench.privacy`: what personal fields cost (docs/privacy.md), no Kafka, keys in memory.

- **per field**: encoding and decoding `OrderPlaced` with its two personal fields set, against
  the same record with both null; the difference over two is the cost of sealing (encode) and
  opening (decode) one field, key cached.
- **write path**: the offline write path's CPU per command (`bench.offline`) for the bench
  traffic, and for the same traffic whose `PlaceOrder` commands carry a name and an e-mail (the
  commands are decoded and their events encoded with the fields sealed).

The best of `BENCH_OFFLINE_REPEATS` runs is reported, as the machine is shared.
"""

from __future__ import annotations

import json
import time
from typing import Any

from msgspec.structs import replace

from bench.offline import best, command_records, write_path
from bench.traffic import AGGREGATES, N
from streams.contexts.orders import OrderPlaced, PlaceOrder
from streams.contexts.orders import context as orders
from streams.kafka.runtime import ContextRuntime

CODEC_LOOPS = 20_000


def _per_call(fn: Any) -> float:
    def once() -> float:
        started = time.process_time()
        for _ in range(CODEC_LOOPS):
            fn()
        return time.process_time() - started

    return best(once) / CODEC_LOOPS * 1e6


def _with_person(command: Any) -> Any:
    if isinstance(command, PlaceOrder):
        name = command.customer_id.replace("-", " ").title()
        return replace(command, customer_name=name, customer_email=f"{command.customer_id}@example.org")
    return command


def measure(n: int = N, aggregates: int = AGGREGATES) -> dict[str, Any]:
    """µs of CPU per sealed/opened field, and per command of the write path with and without."""
    runtime = ContextRuntime.offline(orders, prefix="bench.")
    codec = runtime.codec
    plain, personal = (
        OrderPlaced("customer-1", "EUR"),
        OrderPlaced("customer-1", "EUR", "Ada L", "ada@example.org"),
    )
    plain_bytes, personal_bytes = codec.encode(plain), codec.encode(personal)
    encode_plain, encode_personal = (
        _per_call(lambda: codec.encode(plain)),
        _per_call(lambda: codec.encode(personal)),
    )
    decode_plain = _per_call(lambda: codec.decode(plain_bytes))
    decode_personal = _per_call(lambda: codec.decode(personal_bytes))
    without = command_records(runtime, n, aggregates)
    with_person = command_records(runtime, n, aggregates, _with_person)
    places = sum(isinstance(codec.decode(r.value()).message, PlaceOrder) for r in without)
    return {
        "commands": n,
        "place_orders": places,
        "seal_us_per_field": (encode_personal - encode_plain) / 2,
        "open_us_per_field": (decode_personal - decode_plain) / 2,
        "write_us_per_command": best(lambda: write_path(runtime, without)) / n * 1e6,
        "write_us_per_command_with_personal_fields": best(lambda: write_path(runtime, with_person)) / n * 1e6,
    }


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
