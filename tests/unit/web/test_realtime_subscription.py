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
from streams.wire.signing import signature

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


SECRET = b"deployment secret"


def test_a_token_round_trips_every_partition_position() -> None:
    positions = {"orders.events": {0: 5, 3: 12}, "orders.order-summary": {1: 0}}
    token = encode_token(positions, SECRET)
    assert "=" not in token and decode_token(token, SECRET) == positions


def test_a_token_is_refused_by_another_deployment_and_when_edited() -> None:
    token = encode_token({"orders.events": {0: 5}}, SECRET)
    for forged in (
        token,  # signed with another secret, below
        encode_token({"orders.events": {0: 0}}, b"guess").split(".")[0] + "." + token.split(".")[1],
        token.split(".")[0],
    ):
        with pytest.raises(TokenError) as info:
            decode_token(forged, b"another secret" if forged == token else SECRET)
        assert info.value.code == "token_invalid"


@pytest.mark.parametrize(
    "payload",
    [b"[1, 2]", b'{"t": {"x": 1}}'],
)
def test_a_signed_token_that_is_not_positions_is_invalid(payload: bytes) -> None:
    body = base64.urlsafe_b64encode(payload).decode().rstrip("=")
    token = f"{body}.{signature(SECRET, 'resume-token', body)}"
    with pytest.raises(TokenError) as info:
        decode_token(token, SECRET)
    assert info.value.code == "token_invalid"
