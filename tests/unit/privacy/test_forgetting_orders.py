"""The erasure of a customer, end to end without Kafka: commands through the write side's intake,
events and state as they would go to their topics, then the customer forgotten.

Events for customers A and B; forget A; rebuild the state and replay a view from offset 0:
A's personal fields are the replacement, B's intact; no byte of any record holds A's
plaintext; the key store has no key for A; a tampered ciphertext is dead-lettered with its
reason, never a crash. (tests/integration/privacy holds the PostgreSQL key table's part.)
"""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import Message

from streams.config import Settings
from streams.contexts.orders import AddItem, OrderPlaced, PlaceOrder
from streams.contexts.orders import context as orders
from streams.core.commands import Aggregate, CommandResult
from streams.core.views import EventMeta, State, View, fold_view
from streams.kafka.forgetting import ForgetListener
from streams.kafka.runtime import ContextRuntime
from streams.read.stage import failure_reason
from streams.wire import headers as h
from streams.wire.codec import DecodeError
from streams.write.batch import DecidedBatch
from streams.write.intake import BatchDecider, IntakeLimits

NOW = "2026-12-01T00:00:00.000Z"
A = {"id": "cust-A", "name": "Ada Lovelace", "email": "ada@analytical.example"}
B = {"id": "cust-B", "name": "Bob Babbage", "email": "bob@difference.example"}


class _NoState:
    def aggregate(self, partition: int, key: bytes) -> Aggregate[Any] | None:
        return None

    def command_result(self, partition: int, command_id: bytes) -> CommandResult | None:
        return None


def _customers(state: State | None, event: Any, meta: EventMeta) -> State | None:
    """A view that shows the customer's personal fields (the orders views keep none)."""
    if isinstance(event, OrderPlaced):
        return {"customer_id": event.customer_id, "name": event.customer_name, "email": event.customer_email}
    return state


CUSTOMERS = View("customers", _customers)


def _command(runtime: ContextRuntime, order: str, body: Any, offset: int) -> Message:
    return Message(
        topic=runtime.topics.commands,
        partition=0,
        offset=offset,
        key=order.encode(),
        value=runtime.codec.encode(body),
        headers=[(h.COMMAND_ID, f"cmd-{offset}".encode())],
        timestamp=(1, 1_764_547_200_000 + offset),
    )


def _decide(runtime: ContextRuntime, messages: list[Message]) -> DecidedBatch:
    limits = IntakeLimits(max_record_bytes=100_000, max_state_bytes=100_000, snapshot_every=0)
    return BatchDecider(orders, runtime.codec, limits).decide(messages, _NoState(), (0,), NOW)


@pytest.fixture
def written() -> tuple[ContextRuntime, list[Message], DecidedBatch]:
    runtime = ContextRuntime.offline(orders)
    commands = [
        _command(runtime, "o-A", PlaceOrder(A["id"], "EUR", A["name"], A["email"]), 0),
        _command(runtime, "o-B", PlaceOrder(B["id"], "EUR", B["name"], B["email"]), 1),
        _command(runtime, "o-A", AddItem("sku-1", 1, 100), 2),
    ]
    batch = _decide(runtime, commands)
    assert [r.result.accepted for r in batch.results] == [True, True, True]
    return runtime, commands, batch


def _replay(runtime: ContextRuntime, batch: DecidedBatch) -> list[tuple[Any, EventMeta]]:
    """The events from offset 0, decoded as a replay or a rebuild reads them."""
    out = []
    for event in batch.events:
        meta = h.as_dict(event.headers)
        em = EventMeta(
            meta[h.AGGREGATE_ID], int(meta[h.AGGREGATE_VERSION]), event.event_type, meta[h.OCCURRED_AT]
        )
        out.append((runtime.codec.decode(event.value).message, em))
    return out


def _all_bytes(commands: list[Message], batch: DecidedBatch) -> bytes:
    """Every byte the batch would write (commands, events with headers, state changelog, results)."""
    parts: list[bytes] = [m.value() or b"" for m in commands]
    for e in batch.events:
        parts += [e.key, e.value, *(v for _, v in e.headers if v)]
    for states in batch.states.values():
        parts += [*states.keys(), *states.values()]
    parts += [repr(r.result).encode() for r in batch.results]
    return b"|".join(parts)


def _plaintexts(person: dict[str, str]) -> list[bytes]:
    return [person["name"].encode(), person["email"].encode(), b"Ada", b"analytical"]


def test_decide_and_views_see_plain_values_and_no_record_holds_them(
    written: tuple[ContextRuntime, list[Message], DecidedBatch],
) -> None:
    runtime, commands, batch = written
    events = _replay(runtime, batch)
    assert events[0][0] == OrderPlaced(A["id"], "EUR", A["name"], A["email"])
    raw = _all_bytes(commands, batch)
    assert all(p not in raw for p in _plaintexts(A)) and B["email"].encode() not in raw
    assert A["id"].encode() in raw  # the subject id is not personal data here: pseudonymous


def test_forgetting_a_customer_erases_their_fields_everywhere_and_keeps_the_others(
    written: tuple[ContextRuntime, list[Message], DecidedBatch],
) -> None:
    runtime, commands, batch = written
    keyring = runtime.codec.keyring
    before = fold_view(CUSTOMERS, _replay(runtime, batch))
    assert before["o-A"].state == {"customer_id": A["id"], "name": A["name"], "email": A["email"]}

    assert keyring.forget(A["id"])
    ForgetListener(Settings(), lambda: [keyring]).evict(A["id"])  # as on SubjectForgotten

    assert keyring.store.get(A["id"]) is None and keyring.store.get(B["id"]) is not None
    replayed = fold_view(CUSTOMERS, _replay(runtime, batch))  # a fresh version, from offset 0
    assert replayed["o-A"].state == {"customer_id": A["id"], "name": None, "email": None}
    assert replayed["o-B"].state == {"customer_id": B["id"], "name": B["name"], "email": B["email"]}
    state = orders.initial_state
    for event, meta in _replay(runtime, batch):  # the state rebuilt from the log
        if meta.aggregate_id == "o-A":
            state = orders.evolve(state, event)
    assert state.customer_id == A["id"] and state.status == "placed" and len(state.lines) == 1
    # the commands topic (7 days) is sealed the same way: a command of A's still waiting there
    # needs personal data that is gone, and is rejected with the reason; B's goes through
    redecided = _decide(runtime, commands[:2])
    assert [(r.result.status, r.result.reason) for r in redecided.results] == [
        ("rejected", "subject_forgotten"),
        ("accepted", ""),
    ]
    assert "customer_name" in redecided.results[0].result.detail
    placed = [runtime.codec.decode(e.value).message for e in redecided.events]
    assert placed == [OrderPlaced(B["id"], "EUR", B["name"], B["email"])]


def test_a_tampered_ciphertext_is_dead_lettered_with_its_reason(
    written: tuple[ContextRuntime, list[Message], DecidedBatch],
) -> None:
    runtime, commands, batch = written
    value = bytearray(commands[1].value() or b"")
    value[-1] ^= 0x01  # the last byte of B's sealed e-mail (its GCM tag)
    tampered = Message(
        topic=runtime.topics.commands, partition=0, offset=9, key=b"o-C", value=bytes(value),
        headers=[(h.COMMAND_ID, b"cmd-9")], timestamp=(1, 1_764_547_200_009),
    )  # fmt: skip
    dead = _decide(runtime, [tampered])
    (letter,) = dead.dead_letters
    assert letter.reason == "tampered_ciphertext" and letter.value == bytes(value)
    assert h.as_dict(letter.headers)[h.DLQ_REASON] == "tampered_ciphertext"
    event = bytearray(batch.events[1].value)
    event[-1] ^= 0x01
    with pytest.raises(DecodeError) as caught:  # what the read side dead-letters, by its reason
        runtime.codec.decode(bytes(event))
    assert failure_reason(caught.value) == "tampered_ciphertext"
