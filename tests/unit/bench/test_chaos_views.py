"""The chaos checker's comparison of a view topic with the fold of the log (no Kafka)."""

from __future__ import annotations

from bench.chaos.views import TopicDocument, mismatches
from streams.core.views import Document


def doc(key: str, state: dict[str, object] | None, version: int) -> Document:
    return Document(key, state, {key: version}, version)


def test_equal_documents_and_compacted_deletions_match() -> None:
    expected = {"a": doc("a", {"n": 1}, 2), "gone": doc("gone", None, 3)}
    assert mismatches(expected, {"a": TopicDocument({"n": 1}, 2)}) == []
    assert mismatches(expected, {"a": TopicDocument({"n": 1}, 2), "gone": None}) == []


def test_every_difference_is_named() -> None:
    expected = {"a": doc("a", {"n": 1}, 2), "b": doc("b", {"n": 5}, 1), "gone": doc("gone", None, 3)}
    actual = {
        "a": TopicDocument({"n": 2}, 2),  # another state
        "gone": TopicDocument({"n": 0}, 2),  # the fold deleted it
        "extra": TopicDocument({"n": 9}, 1),  # no such document in the fold
    }  # and b is missing
    found = mismatches(expected, actual)
    assert found == [
        "a: topic has version 2, the fold 2 (states differ)",
        "b: missing from the topic",
        "gone: deleted in the fold, present in the topic",
        "extra: in the topic, not in the fold",
    ]


def test_a_rekeyed_views_last_version_is_not_compared() -> None:
    expected = {"c": doc("c", {"orders": 2}, 5)}
    held = {"c": TopicDocument({"orders": 2}, 7)}  # another aggregate's event came last
    assert mismatches(expected, held, versions=False) == []
    assert mismatches(expected, {"c": TopicDocument({"orders": 1}, 5)}, versions=False) == [
        "c: topic has version 5, the fold 5 (states differ)"
    ]
