"""`DELETE /privacy/subjects/{subject}` refuses what it must before touching any key."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from streams.config import Settings
from streams.kafka.forgetting import ForgetListener
from streams.privacy.errors import KeyStoreUnavailable, NoMasterKey
from streams.privacy.keys import ephemeral_keyring
from streams.web.privacy import PrivacyEndpoints
from streams.web.problems import answer


def _call(settings: Settings, subject: str) -> tuple[int, dict[str, Any]]:
    app = web.Application()
    endpoints = PrivacyEndpoints(settings)
    app.router.add_routes(endpoints.routes())
    request = make_mocked_request(
        "DELETE", f"/privacy/subjects/{subject}", match_info={"subject": subject}, app=app
    )
    response = asyncio.run(endpoints.forget(request))
    return response.status, json.loads(response.text or "{}")


def test_erasure_needs_a_bearer_token_on_the_worker() -> None:
    status, body = _call(replace(Settings(), auth_token=""), "c-1")
    assert status == 403 and body["reason"] == "erasure_needs_token"


def test_a_subject_outside_the_identifier_policy_is_refused() -> None:
    status, body = _call(replace(Settings(), auth_token="t"), "bad\x01id")
    assert status == 400 and body["field"] == "subject"


@pytest.mark.parametrize(
    ("error", "status", "reason"),
    [
        (NoMasterKey("none"), 422, "no_master_key"),
        (KeyStoreUnavailable("down"), 503, "key_store_unavailable"),
    ],
)
def test_key_errors_are_problems(error: Exception, status: int, reason: str) -> None:
    """No master key: the request's personal data is refused (4xx, a request never gets a 5xx for
    what it carries); an unreachable key store is the server's, and passes."""
    response = answer(error)
    assert response is not None and response.status == status
    assert json.loads(response.text or "{}")["reason"] == reason


def test_the_listener_evicts_a_forgotten_subject_from_every_keyring() -> None:
    rings = [ephemeral_keyring(), ephemeral_keyring()]
    keys = [ring.for_write("A") for ring in rings]
    for ring in rings:
        ring.store.delete("A")  # deleted by another process: still cached here
    assert all(ring.for_read("A", key.key_id) == key for ring, key in zip(rings, keys, strict=True))
    ForgetListener(Settings(), lambda: rings).evict("A")
    assert all(ring.for_read("A", key.key_id) is None for ring, key in zip(rings, keys, strict=True))
