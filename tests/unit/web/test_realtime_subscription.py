"""Real-time subscriptions and resume tokens, parsed without a server."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from streams.web.realtime.subscription import (
    Subscription,
    SubscriptionError,
    TokenError,
    decode_token,
    encode_token,
    parse_subscription,
)

CONTEXTS = ("orders",)


def test_a_websocket_subscription_with_every_field() -> None:
    data = {
        "type": "subscribe",
        "context": "orders",
        "events": True,
        "views": ["order-summary"],
        "aggregate_id": "o-1",
        "aggregate_type": "Order",
        "event_type": "ItemAdded",
        "resume": "tok",
    }
    assert parse_subscription(data, CONTEXTS) == Subscription(
        "orders", True, ("order-summary",), "o-1", "Order", "ItemAdded", "tok"
    )


def test_sse_query_parameters_are_text_and_mean_the_same() -> None:
    sub = parse_subscription({"context": "orders", "events": "false", "views": "a,b"}, CONTEXTS)
    assert (sub.events, sub.views) == (False, ("a", "b"))
    assert parse_subscription({"context": "orders"}, CONTEXTS).events is True


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "must be a JSON object"),
        ({"context": "orders", "colour": "red"}, "unknown field(s) colour"),
        ({"type": "unsubscribe", "context": "orders"}, "unknown message type"),
        ({}, "context (non-empty string) is required"),
        ({"context": "games"}, "unknown context 'games'; known: orders"),
        ({"context": "orders", "events": 1}, "events must be a boolean"),
        ({"context": "orders", "views": [1]}, "views must be a list"),
        ({"context": "orders", "events": False}, "nothing to subscribe to"),
        ({"context": "orders", "aggregate_id": 7}, "aggregate_id must be a string"),
    ],
)
def test_a_bad_subscription_names_what_is_wrong(data: Any, message: str) -> None:
    with pytest.raises(SubscriptionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_subscription(data, CONTEXTS)


def test_a_token_round_trips_every_partition_position() -> None:
    positions = {"orders.events": {0: 5, 3: 12}, "orders.order-summary": {1: 0}}
    token = encode_token(positions)
    assert "=" not in token and decode_token(token) == positions


@pytest.mark.parametrize(
    "token",
    [
        "%%%",
        base64.urlsafe_b64encode(b"[1, 2]").decode(),
        base64.urlsafe_b64encode(b'{"t": {"x": 1}}').decode(),
    ],
)
def test_a_token_that_is_not_ours_is_invalid(token: str) -> None:
    with pytest.raises(TokenError) as info:
        decode_token(token)
    assert info.value.code == "token_invalid"
