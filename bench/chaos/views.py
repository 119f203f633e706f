"""The chaos checker's read side: every view's documents, as its compacted topic holds them, equal
the fold of the events log (`streams.core.views.fold_view`, the reference the tests use), once the
worker has folded everything."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bench.chaos.check import read_all
from streams.config import Settings
from streams.core.views import Document, fold_view
from streams.kafka.runtime import ContextRuntime
from streams.read.stage import event_meta
from streams.wire.jsonable import to_json


@dataclass(frozen=True)
class TopicDocument:
    """A view topic's last record of one key: the document's state as JSON (None: a tombstone)."""

    state: Any
    last_event_version: int


def mismatches(
    expected: Mapping[str, Document], actual: Mapping[str, TopicDocument | None], versions: bool = True
) -> list[str]:
    """Keys whose document in the topic differs from the fold: missing, extra, another state or
    (with `versions`) another last version. A document the fold deleted may be a tombstone or gone
    (compacted). A re-keyed view's document folds several aggregates, whose events reach it in an
    order the log's partitions do not fix: its last version is not compared."""
    found: list[str] = []
    for key, doc in expected.items():
        held = actual.get(key)
        if doc.state is None:
            if held is not None and held.state is not None:
                found.append(f"{key}: deleted in the fold, present in the topic")
            continue
        if held is None or held.state is None:
            found.append(f"{key}: missing from the topic")
            continue
        same_state = held.state == to_json(doc.state)
        if not same_state or (versions and held.last_event_version != doc.last_event_version):
            found.append(
                f"{key}: topic has version {held.last_event_version}, the fold {doc.last_event_version}"
                + ("" if same_state else " (states differ)")
            )
    found += [f"{key}: in the topic, not in the fold" for key, held in actual.items()
              if key not in expected and held is not None and held.state is not None]  # fmt: skip
    return found


def topic_documents(
    settings: Settings, runtime: ContextRuntime, topic: str
) -> dict[str, TopicDocument | None]:
    """The last record per key of a view topic, decoded."""
    latest: dict[str, TopicDocument | None] = {}
    for msg in read_all(settings, topic):
        key = msg.key().decode()
        if msg.value() is None:
            latest[key] = None
            continue
        doc = runtime.codec.decode(msg.value()).message
        latest[key] = TopicDocument(json.loads(doc.state), doc.last_event_version)
    return latest


def check_views(settings: Settings, runtime: ContextRuntime, wait_s: float = 300.0) -> list[str]:
    """Problems of every view of the context (none: each equals the fold of the log), waiting up to
    `wait_s` for the worker to fold the last events."""
    log = [
        (runtime.codec.decode(m.value()).message, event_meta(m.headers(), m.key().decode()))
        for m in read_all(settings, runtime.topics.events)
    ]
    problems: list[str] = []
    for view in runtime.context.views:
        expected = fold_view(view, log)
        deadline = time.monotonic() + wait_s
        while True:
            held = topic_documents(settings, runtime, runtime.topics.view(view.name))
            found = mismatches(expected, held, versions=not view.repartitioned)
            if not found or time.monotonic() > deadline:
                break
            time.sleep(2)
        if found:
            problems.append(
                f"view {view.name}: {len(found)} documents differ from the fold, e.g. {found[:3]}"
            )
    return problems
