"""A forgotten member leaves the write side's state and the views, and stays gone after a restore.

The test-only `members` context (tests/integration/privacy/members.py) keeps the member's name
and e-mail in its state (sealed in the RocksDB rows, the changelog and the snapshots) and has two
views declaring them: `member-cards` deletes a forgotten member's documents, `member-contacts`
gives them the replacements. Member A has two memberships, member B one; A is forgotten. Then:

- the changelog and the snapshots hold A's replacement (read back as a restoring worker would),
  B intact, and the raw bytes of the commands, events, changelog and snapshots topics hold no
  plain name or e-mail of either (nor do the latest records of the view topics hold A's);
- the live worker's cached state of A is dropped: a `ChangeEmail` to A's old address, which the
  state refused before (`email_unchanged`), is accepted;
- `member-cards`: A's documents deleted (404, a tombstone on the view topic), B's kept;
  `member-contacts`: A's documents with the replacements;
- a fresh worker (its data directory deleted) restores its state from the changelog and its view
  stores from the view topics: A's state reads as the replacement, B's as it was, the erased and
  deleted documents stay so, and erasing B on the restored stores (the subject index rebuilt from
  the view topic) deletes and erases B's documents.
"""

from __future__ import annotations

import base64
import shutil
import signal
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import httpx
import pytest

from streams.client import read_topic
from streams.config import Settings
from streams.kafka.fold import aggregate_from_changelog
from streams.kafka.runtime import ContextRuntime
from streams.privacy.keys import Keyring
from streams.privacy.master import LocalMasterKey
from streams.privacy.postgres import PostgresKeyStore
from streams.wire.codec import AvroCodec
from streams.wire.schemas import catalog_for
from streams.wire.state import StateFormat
from tests.conftest import StackEndpoints
from tests.integration.privacy import members
from tests.integration.workers import Deployment, deployed, wait_until

pytestmark = pytest.mark.integration

TOKEN = "state-erasure-token"
MASTER = base64.b64encode(b"s" * 32).decode()
AUTH = {"Authorization": f"Bearer {TOKEN}"}
VIEWS = ("member-cards", "member-contacts")


@dataclass(frozen=True)
class Erased:
    """What the module's story did before its tests look: who, which memberships, and a runtime
    reading the deployment's topics with its own keyring."""

    deployment: Deployment
    runtime: ContextRuntime
    keys: Keyring
    people: dict[str, dict[str, str]]
    memberships: dict[str, str]
    """m-A1, m-A2 (member A), m-B (member B) -> aggregate id."""


def _command(dep: Deployment, command: str, membership: str, data: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{dep.url()}/members/commands/{command}",
        json={"aggregate_id": membership, "data": data},
        headers=AUTH,
        timeout=60,
    )


def _document(dep: Deployment, view: str, membership: str) -> dict[str, Any] | None:
    answer = httpx.get(f"{dep.url()}/members/views/{view}/{membership}", headers=AUTH, timeout=30)
    assert answer.status_code in (200, 404), answer.text
    return answer.json()["state"] if answer.status_code == 200 else None


def _latest(settings: Settings, topic: str) -> dict[bytes, bytes | None]:
    latest: dict[bytes, bytes | None] = {}
    for msg in read_topic(settings, topic, idle_timeout=2.0):
        latest[msg.key()] = msg.value()
    return latest


def _raw(settings: Settings, runtime: ContextRuntime) -> bytes:
    """Every record (values and headers) of the topics personal values reach sealed."""
    topics = [
        runtime.topics.commands,
        runtime.topics.events,
        runtime.topics.changelog,
        runtime.topics.snapshots,
    ]
    return b"".join(
        (m.value() or b"") + b"".join(v or b"" for _, v in m.headers() or [])
        for topic in topics
        for m in read_topic(settings, topic, idle_timeout=2.0)
    )


def _person(who: str, run: str) -> dict[str, str]:
    """Member `who`'s id, name and e-mail in this run."""
    return dict(
        member_id=f"member-{who}-{run}", name=f"Name{who} {run}", email=f"{who.lower()}-{run}@example.org"
    )


def _plain(person: dict[str, str]) -> list[bytes]:
    return [person["name"].encode(), person["email"].encode()]


@pytest.fixture(scope="module")
def erased(stack: StackEndpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Erased]:
    env = {
        "STREAMS_AUTH_TOKEN": TOKEN, "STREAMS_SECRET": "state-erasure", "STREAMS_MASTER_KEY": MASTER,
        "STREAMS_CONTEXT_MODULES": "tests.integration.privacy.members", "STREAMS_CONTEXTS": "members",
        "STREAMS_SINKS": "0", "STREAMS_WINDOWS": "0", "STREAMS_SNAPSHOT_EVERY": "1",
    }  # fmt: skip
    with deployed(tmp_path_factory.mktemp("state-erasure"), "se", **env) as dep:
        run = uuid.uuid4().hex[:8]
        people = {who: _person(who, run) for who in "AB"}
        memberships = {m: f"{m}-{run}" for m in ("m-A1", "m-A2", "m-B")}
        for m, membership in memberships.items():
            joined = _command(dep, "Join", membership, people[m[2]])
            assert joined.status_code == 200, joined.text
        for m, membership in memberships.items():
            for view in VIEWS:
                wait_until(lambda v=view, i=membership: _document(dep, v, i), f"{m}'s {view} document")
        for m in ("m-A1", "m-B"):  # the state has the address: deciding needs it
            same = {"member_id": people[m[2]]["member_id"], "email": people[m[2]]["email"]}
            unchanged = _command(dep, "ChangeEmail", memberships[m], same)
            assert unchanged.status_code == 422 and unchanged.json()["reason"] == "email_unchanged", (
                unchanged.text
            )

        settings = dep.settings()
        keys = Keyring(PostgresKeyStore(settings.pg_dsn), LocalMasterKey.parse(MASTER))
        codec = AvroCodec.connect(
            catalog_for(members.context), settings.registry_url, settings.topic_prefix, keys
        )
        runtime = ContextRuntime.connect(settings, members.context)
        runtime = replace(runtime, codec=codec, states=StateFormat(members.Membership, codec))
        state = aggregate_from_changelog(settings, runtime, memberships["m-A2"])
        assert state is not None and state.state == members.Membership("active", **people["A"])

        forgotten = httpx.delete(
            f"{dep.url()}/privacy/subjects/{people['A']['member_id']}", headers=AUTH, timeout=60
        )
        assert forgotten.status_code == 200 and forgotten.json()["key_deleted"] is True, forgotten.text
        keys.evict(people["A"]["member_id"])  # this process was not listening
        yield Erased(dep, runtime, keys, people, memberships)
        PostgresKeyStore(settings.pg_dsn).delete(people["B"]["member_id"])


def test_the_state_and_the_views_of_a_forgotten_member(erased: Erased) -> None:
    dep, runtime, people, memberships = erased.deployment, erased.runtime, erased.people, erased.memberships
    settings = dep.settings()
    erased_a = members.Membership("active", people["A"]["member_id"], None, members.ERASED)
    for m in ("m-A1", "m-A2"):
        restored = aggregate_from_changelog(settings, runtime, memberships[m])
        assert restored is not None and restored.state == erased_a
    b = aggregate_from_changelog(settings, runtime, memberships["m-B"])
    assert b is not None and b.state == members.Membership("active", **people["B"])
    snapshot = httpx.get(f"{dep.url()}/members/aggregates/{memberships['m-A2']}", headers=AUTH, timeout=30)
    assert snapshot.status_code == 200, snapshot.text
    assert snapshot.json()["state"] == {"status": "active", "member_id": people["A"]["member_id"],
                                        "name": None, "email": members.ERASED}  # fmt: skip

    for m in ("m-A1", "m-A2"):
        wait_until(lambda i=memberships[m]: _document(dep, "member-cards", i) is None, f"{m}'s card deleted")
        contact = wait_until(
            lambda i=memberships[m]: (
                (d := _document(dep, "member-contacts", i)) and d.get("name") is None and d
            ),
            f"{m}'s contact erased",
        )
        assert contact == {"member_id": people["A"]["member_id"], "name": None, "email": None}
    for view in VIEWS:
        assert _document(dep, view, memberships["m-B"]) == people["B"]
    cards = _latest(settings, runtime.topics.view_version("member-cards", 1))
    assert cards[memberships["m-A1"].encode()] is None and cards[memberships["m-A2"].encode()] is None
    assert cards[memberships["m-B"].encode()] is not None
    raw = _raw(settings, runtime)
    assert not any(value in raw for person in people.values() for value in _plain(person))
    latest = b"".join(
        v or b"" for view in VIEWS for v in _latest(settings, runtime.topics.view_version(view, 1)).values()
    )
    assert (
        not any(value in latest for value in _plain(people["A"])) and people["B"]["email"].encode() in latest
    )

    # the live worker's cached state of A was dropped: its address is the replacement now
    again = {"member_id": people["A"]["member_id"], "email": people["A"]["email"]}
    accepted = _command(dep, "ChangeEmail", memberships["m-A1"], again)
    assert accepted.status_code == 200, accepted.text


def test_a_fresh_worker_restores_the_erasure_and_forgets_another_member(erased: Erased) -> None:
    dep, runtime, people, memberships = erased.deployment, erased.runtime, erased.people, erased.memberships
    settings = dep.settings()
    dep.kill("w1", signal.SIGTERM)
    shutil.rmtree(dep.data_dir / "w1", ignore_errors=True)  # a new host: stores from the topics alone
    dep.start("w1")
    dep.wait_healthy("w1")

    def restored() -> bool:
        return (
            _document(dep, "member-contacts", memberships["m-B"]) == people["B"]
            and _document(dep, "member-cards", memberships["m-B"]) == people["B"]
        )

    wait_until(restored, "the view stores restored")
    assert _document(dep, "member-cards", memberships["m-A2"]) is None
    erased_contact = {"member_id": people["A"]["member_id"], "name": None, "email": None}
    assert _document(dep, "member-contacts", memberships["m-A2"]) == erased_contact  # the view topic's

    same_b = {"member_id": people["B"]["member_id"], "email": people["B"]["email"]}
    unchanged = wait_until(
        lambda: (r := _command(dep, "ChangeEmail", memberships["m-B"], same_b)).status_code != 503 and r,
        "the restored worker to decide",
    )
    assert unchanged.status_code == 422 and unchanged.json()["reason"] == "email_unchanged", unchanged.text
    same_a = {"member_id": people["A"]["member_id"], "email": people["A"]["email"]}
    accepted = _command(dep, "ChangeEmail", memberships["m-A2"], same_a)  # restored: the replacement
    assert accepted.status_code == 200, accepted.text

    forgotten = httpx.delete(
        f"{dep.url()}/privacy/subjects/{people['B']['member_id']}", headers=AUTH, timeout=60
    )
    assert forgotten.status_code == 200 and forgotten.json()["key_deleted"] is True, forgotten.text
    wait_until(lambda: _document(dep, "member-cards", memberships["m-B"]) is None, "B's card deleted")
    contact = wait_until(
        lambda: (d := _document(dep, "member-contacts", memberships["m-B"])) and d.get("name") is None and d,
        "B's contact erased",
    )
    assert contact == {"member_id": people["B"]["member_id"], "name": None, "email": None}
    erased.keys.evict(people["B"]["member_id"])
    b = aggregate_from_changelog(settings, runtime, memberships["m-B"])
    assert b is not None and b.state == members.Membership(
        "active", people["B"]["member_id"], None, members.ERASED
    )
    raw = _raw(settings, runtime)
    assert not any(value in raw for person in people.values() for value in _plain(person))
