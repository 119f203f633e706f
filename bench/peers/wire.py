"""The peers' wire format, shared by the Quix Streams and Kafka Streams peers (and the Java in
`kstreams/src/streamsbench/Wire.java`).

A command is a JSON object with its type and fields,
`{"type": "AddItem", "sku": "sku-3", "quantity": 2, "unit_price_cents": 121, "currency": null}`.
For each command a peer produces one output record: the event it caused,
`{"type": "ItemAdded", "sku": "sku-3", "quantity": 2, "unit_price_minor": 121}`, or the rejection,
`{"rejected": "order_not_found", "command": "AddItem"}`. No registry, no headers.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable
from typing import Any

import orjson

from streams.contexts.orders import AddItem, PlaceOrder
from streams.contexts.orders import context as orders
from streams.core.decider import Message, Rejected

COMMANDS: dict[str, type] = {"PlaceOrder": PlaceOrder, "AddItem": AddItem}
"""The command types the peers know: the two of the bench traffic."""


def fields(record: Message) -> dict[str, Any]:
    """A record's fields by name, whether its class is a dataclass or a msgspec Struct (a
    context may use either)."""
    names = getattr(type(record), "__struct_fields__", None)
    if names is None:
        names = tuple(f.name for f in dataclasses.fields(record))
    return {name: getattr(record, name) for name in names}


def command_json(command: Message) -> dict[str, Any]:
    """A command as the JSON object of the wire format."""
    return {"type": type(command).__name__, **fields(command)}


def command_bytes(command: Message) -> bytes:
    """A command as a record value."""
    return orjson.dumps(command_json(command))


def command_lines(commands: Iterable[tuple[str, Message]]) -> str:
    """`key<TAB>json` lines: the input of the peers' rules checks (`quix_check`, `RulesCheck`)."""
    return "".join(f"{key}\t{command_bytes(command).decode()}\n" for key, command in commands)


def decode_command(value: dict[str, Any]) -> Message:
    """The command a JSON object holds; an unknown type is rejected as `unknown_command`."""
    kind = COMMANDS.get(value.get("type", ""))
    if kind is None:
        raise Rejected("unknown_command", str(value.get("type")))
    return kind(**{k: v for k, v in value.items() if k != "type"})


def event_json(event: Message) -> dict[str, Any]:
    """An event as an output record's JSON object."""
    return {"type": type(event).__name__, **fields(event)}


def rejection_json(reason: str, command_type: str) -> dict[str, Any]:
    """A rejection as an output record's JSON object."""
    return {"rejected": reason, "command": command_type}


def outcome(output: dict[str, Any]) -> str:
    """`accepted:<event type>` or `rejected:<reason>`: what the tests count."""
    return f"rejected:{output['rejected']}" if "rejected" in output else f"accepted:{output['type']}"


def reference_outcomes(commands: Iterable[tuple[str, Message]]) -> Counter[str]:
    """The outcomes our own orders context gives `commands` (decide, then evolve when accepted):
    the counts each peer must reproduce."""
    states: dict[str, Any] = {}
    counts: Counter[str] = Counter()
    for aggregate_id, command in commands:
        state = states.get(aggregate_id, orders.initial_state)
        try:
            events = orders.decide(state, command)
        except Rejected as rejected:
            counts[f"rejected:{rejected.reason}"] += 1
            continue
        counts.update(f"accepted:{type(e).__name__}" for e in events)
        states[aggregate_id] = orders.fold(events, state)
    return counts
