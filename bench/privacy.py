"""`python -m bench.privacy`: what personal fields cost (docs/privacy.md), no Kafka, keys in memory.

- **per field**: encoding and decoding `OrderPlaced` with its two personal fields set, against
  the same record with both null; the difference over two is the cost of sealing (encode) and
  opening (decode) one field, key cached.
- **write path**: the offline write path's CPU per command (`bench.offline`) for the bench
  traffic, and for the same traffic whose `PlaceOrder` commands carry a name and an e-mail (the
  commands are decoded and their events encoded with the fields sealed).
- **state rows**: encoding and decoding the state row (`streams.wire.state`) of a state with two
  personal fields set, against the same state with both null; the difference over two is the
  cost of sealing and of opening one state field.

The best of `BENCH_OFFLINE_REPEATS` runs is reported, as the machine is shared; the result file
(`bench/results/privacy-<time>.json`) records the load average at the start and the end.
`python -m bench.privacy --docs <result file>` writes its table into docs/privacy.md (between the
`bench.privacy` markers), and a unit test holds the page to the file it names: nothing measured is
typed by hand.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

from msgspec import Struct
from msgspec.structs import replace

from bench.offline import best, command_records, write_path
from bench.provenance import provenance
from bench.traffic import AGGREGATES, N
from streams.contexts.orders import OrderPlaced, PlaceOrder
from streams.contexts.orders import context as orders
from streams.core.commands import Aggregate
from streams.core.records import Personal
from streams.kafka.runtime import ContextRuntime
from streams.wire.state import StateFormat

CODEC_LOOPS = 20_000


class Customer(Struct, frozen=True):
    """A state keeping a customer's name and e-mail (personal: sealed in its rows)."""

    customer_id: str = ""
    orders: int = 0
    name: Annotated[str | None, Personal(subject="customer_id")] = None
    email: Annotated[str | None, Personal(subject="customer_id")] = None


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
    states = StateFormat(Customer, codec)
    bare, known = (
        Aggregate(4, Customer("customer-1", 3)),
        Aggregate(4, Customer("customer-1", 3, "Ada L", "ada@example.org")),
    )
    bare_row, known_row = states.encode(bare), states.encode(known)
    row_seal = (_per_call(lambda: states.encode(known)) - _per_call(lambda: states.encode(bare))) / 2
    row_open = (_per_call(lambda: states.decode(known_row)) - _per_call(lambda: states.decode(bare_row))) / 2
    without = command_records(runtime, n, aggregates)
    with_person = command_records(runtime, n, aggregates, _with_person)
    places = sum(isinstance(codec.decode(r.value()).message, PlaceOrder) for r in without)
    return {
        "commands": n,
        "place_orders": places,
        "seal_us_per_field": (encode_personal - encode_plain) / 2,
        "open_us_per_field": (decode_personal - decode_plain) / 2,
        "state_seal_us_per_field": row_seal,
        "state_open_us_per_field": row_open,
        "write_us_per_command": best(lambda: write_path(runtime, without)) / n * 1e6,
        "write_us_per_command_with_personal_fields": best(lambda: write_path(runtime, with_person)) / n * 1e6,
    }


RESULTS = Path(__file__).parent / "results"
DOC = Path(__file__).parent.parent / "docs" / "privacy.md"
BEGIN, END = "<!-- bench.privacy:begin -->", "<!-- bench.privacy:end -->"


def run() -> Path:
    """Measure, and write the figures with their provenance to `bench/results/privacy-<time>.json`."""
    load_at_start = os.getloadavg()[0]
    result: dict[str, Any] = {"provenance": provenance(), "load_avg_at_start": load_at_start}
    result["figures"] = measure()
    result["load_avg_at_end"] = os.getloadavg()[0]
    path = RESULTS / f"privacy-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def markdown(result: dict[str, Any], name: str) -> str:
    """The docs' table of a result file (`name`: its path in the repository)."""
    f = result["figures"]
    without, with_ = f["write_us_per_command"], f["write_us_per_command_with_personal_fields"]
    return "\n".join(
        [
            f"Measured by `python -m bench.privacy` (`{name}`; the table is generated from it), "
            f"{result['provenance']['cpus']} shared cores, load average {result['load_avg_at_start']:.1f} "
            f"at the start and {result['load_avg_at_end']:.1f} at the end, best of the repeats:",
            "",
            "| figure | µs of CPU |",
            "|---|---|",
            f"| sealing one field (encode, key cached) | {f['seal_us_per_field']:.1f} |",
            f"| opening one field (decode, key cached) | {f['open_us_per_field']:.1f} |",
            f"| sealing one field of a state row (key cached) | {f['state_seal_us_per_field']:.1f} |",
            f"| opening one field of a state row (key cached) | {f['state_open_us_per_field']:.1f} |",
            f"| write path per command, {f['commands']:,} commands, no personal field | {without:.1f} |",
            f"| the same, its {f['place_orders']:,} `PlaceOrder` with a name and an e-mail | {with_:.1f} |",
        ]
    )


def write_docs(result_file: Path, doc: Path = DOC) -> None:
    """Replace the table between the markers of `doc` with the one of `result_file`."""
    name = result_file.resolve().relative_to(DOC.parent.parent.resolve()).as_posix()
    table = markdown(json.loads(result_file.read_text()), name)
    text = doc.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    doc.write_text(f"{text[:start]}\n{table}\n{text[end:]}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--docs"]:
        write_docs(Path(sys.argv[2]))
    else:
        written = run()
        print(written)
        print(written.read_text())
