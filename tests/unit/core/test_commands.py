"""Handling one command against an aggregate, without Kafka."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.contexts.orders import AddItem, ConfirmOrder, ItemAdded, OrderPlaced, PlaceOrder, context
from streams.core.commands import Aggregate, CommandEnvelope, handle_command

NEW = Aggregate(0, context.initial_state)


def envelope(command: object, expected: int | None = None) -> CommandEnvelope:
    return CommandEnvelope("cmd-1", "o-1", command, expected_version=expected)


def test_accepted_commands_number_their_events_from_the_current_version() -> None:
    placed = handle_command(context, NEW, envelope(PlaceOrder("c", "EUR")))
    assert placed.result.accepted and placed.result.aggregate_version == 1
    assert placed.events == ((1, OrderPlaced("c", "EUR")),)
    added = handle_command(context, placed.aggregate, envelope(AddItem("x", 1, 5)))
    assert added.events == ((2, ItemAdded("x", 1, 5)),)
    assert added.aggregate.version == 2 and added.aggregate.state.total_cents == 5


def test_a_rejection_keeps_the_aggregate_and_says_why() -> None:
    outcome = handle_command(context, NEW, envelope(ConfirmOrder()))
    assert outcome.result.status == "rejected" and outcome.result.reason == "order_not_found"
    assert outcome.events == () and outcome.aggregate is NEW


def test_expected_version_must_match() -> None:
    conflict = handle_command(context, NEW, envelope(PlaceOrder("c", "EUR"), expected=3))
    assert conflict.result.reason == "version_conflict" and conflict.result.aggregate_version == 0
    assert "expected version 3" in conflict.result.detail
    ok = handle_command(context, NEW, envelope(PlaceOrder("c", "EUR"), expected=0))
    assert ok.result.accepted


commands = st.one_of(
    st.builds(PlaceOrder, st.sampled_from(["c1", "", "c2"]), st.sampled_from(["EUR", "usd", "GBP"])),
    st.builds(AddItem, st.sampled_from(["a", "b", ""]), st.integers(-1, 3), st.integers(-1, 500)),
    st.builds(ConfirmOrder),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(commands, max_size=30))
def test_the_state_is_always_the_fold_of_the_accepted_events(history: list[object]) -> None:
    aggregate = NEW
    log: list[object] = []
    for command in history:
        outcome = handle_command(context, aggregate, envelope(command))
        log.extend(event for _, event in outcome.events)
        aggregate = outcome.aggregate
    assert aggregate.version == len(log)
    assert aggregate.state == context.fold(log)
