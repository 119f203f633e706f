"""What a real-time client asks for (a subscription) and where it resumes from (a token).

A token is base64url JSON `{topic: {partition: next offset}}` over every subscribed partition,
signed with the deployment's secret (`streams.wire.signing`).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from streams.wire.signing import signature, verify

SUBSCRIPTION_FIELDS = {
    "type",
    "context",
    "events",
    "views",
    "aggregate_id",
    "aggregate_type",
    "event_type",
    "resume",
}


class NotReady(Exception):
    """The worker cannot serve subscriptions yet (it is starting)."""


class SubscriptionError(ValueError):
    """A subscription request that cannot be served; the message names the problem."""


class TokenError(Exception):
    """A resume token that cannot be honoured. `code`: token_invalid | token_expired."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Subscription:
    """What a client wants: a context's events and/or views, filtered, from a token or from now."""

    context: str
    events: bool = True
    views: tuple[str, ...] = ()
    aggregate_id: str = ""
    aggregate_type: str = ""
    event_type: str = ""
    resume: str = ""


def parse_subscription(data: Any, contexts: Collection[str]) -> Subscription:
    """Validate a subscription (a JSON object or query parameters)."""
    if not isinstance(data, dict):
        raise SubscriptionError("a subscription must be a JSON object")
    unknown = sorted(set(data) - SUBSCRIPTION_FIELDS)
    if unknown:
        raise SubscriptionError(f"unknown field(s) {', '.join(unknown)}")
    if data.get("type", "subscribe") != "subscribe":
        raise SubscriptionError(f"unknown message type {data.get('type')!r}; expected 'subscribe'")
    context = data.get("context")
    if not isinstance(context, str) or not context:
        raise SubscriptionError("context (non-empty string) is required")
    if context not in contexts:
        raise SubscriptionError(f"unknown context {context!r}; known: {', '.join(contexts)}")
    events = data.get("events", True)
    if isinstance(events, str):
        events = events.lower() not in ("0", "false", "no", "")
    if not isinstance(events, bool):
        raise SubscriptionError("events must be a boolean")
    views = data.get("views", [])
    if isinstance(views, str):
        views = [v for v in views.split(",") if v]
    if not isinstance(views, list) or not all(isinstance(v, str) and v for v in views):
        raise SubscriptionError("views must be a list of view names")
    if not events and not views:
        raise SubscriptionError("nothing to subscribe to: set events true and/or name views")
    text = {}
    for name in ("aggregate_id", "aggregate_type", "event_type", "resume"):
        value = data.get(name) or ""
        if not isinstance(value, str):
            raise SubscriptionError(f"{name} must be a string")
        text[name] = value
    return Subscription(context, events, tuple(views), **text)


def encode_token(positions: dict[str, dict[int, int]], secret: bytes) -> str:
    """An opaque resume token: the next offset of every subscribed partition, signed, so a
    client can resume only from a position it was given."""
    raw = json.dumps({t: {str(p): o for p, o in ps.items()} for t, ps in positions.items()}, sort_keys=True)
    payload = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
    return f"{payload}.{signature(secret, 'resume-token', payload)}"


def decode_token(token: str, secret: bytes) -> dict[str, dict[int, int]]:
    """The positions in a token (TokenError(token_invalid) when this deployment did not sign it)."""
    payload, _, given = token.rpartition(".")
    if not payload or not verify(secret, given, "resume-token", payload):
        raise TokenError("token_invalid", "resume token is not a token of this server (bad signature)")
    try:
        raw = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return {str(t): {int(p): int(o) for p, o in ps.items()} for t, ps in raw.items()}
    except (binascii.Error, ValueError, AttributeError, TypeError, UnicodeDecodeError) as exc:
        raise TokenError("token_invalid", f"resume token is not a token of this server: {exc}") from None
