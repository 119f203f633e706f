"""Existing topics against their declaration (`streams.kafka.runtime.check_topics`), without Kafka:
an admin stand-in answers the metadata and the configuration the broker would."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from streams.kafka import runtime
from streams.kafka.runtime import TopicProblem, check_topics
from streams.wire.topics import ContextTopics


@dataclass
class Entry:
    value: str


@dataclass
class Topic:
    partitions: dict[int, object]
    error: object = None


@dataclass
class Metadata:
    topics: dict[str, Topic]


@dataclass
class Admin:
    """Topics as a broker holds them: partition counts and effective configs."""

    partitions: dict[str, int]
    configs: dict[str, dict[str, str]] = field(default_factory=dict)

    def list_topics(self, *args: Any, **kw: Any) -> Metadata:
        return Metadata({t: Topic(dict.fromkeys(range(n))) for t, n in self.partitions.items()})

    def describe_configs(self, resources: list[Any], **kw: Any) -> dict[Any, Future[dict[str, Entry]]]:
        out = {}
        for resource in resources:
            future: Future[dict[str, Entry]] = Future()
            future.set_result({k: Entry(v) for k, v in self.configs.get(resource.name, {}).items()})
            out[resource] = future
        return out


TOPICS = ContextTopics("devices", "t.")
(RAW,) = (s for s in TOPICS.window_specs("telemetry", 4) if s.name == TOPICS.window_input("telemetry"))
(EVENTS,) = (s for s in TOPICS.specs(4) if s.name == TOPICS.events)


def test_a_topic_as_declared_or_more_generous_passes() -> None:
    generous = {**RAW.config, "retention.ms": str(30 * 86_400_000), "max.message.bytes": str(8 << 20)}
    admin = Admin({RAW.name: 4, EVENTS.name: 4}, {RAW.name: generous, EVENTS.name: dict(EVENTS.config)})
    assert check_topics(admin, [RAW, EVENTS]) == []


def test_every_difference_is_named(monkeypatch: Any) -> None:
    monkeypatch.setattr(runtime, "CHECK_FOR_S", 0.0)
    auto_created = {"cleanup.policy": "delete", "retention.ms": "604800000", "max.message.bytes": "1048588",
                    "message.timestamp.type": "CreateTime"}  # fmt: skip
    kept_a_week = {**EVENTS.config, "retention.ms": "604800000"}
    admin = Admin({RAW.name: 1, EVENTS.name: 4}, {RAW.name: auto_created, EVENTS.name: kept_a_week})
    assert check_topics(admin, [RAW, EVENTS]) == [
        TopicProblem(RAW.name, "partitions", "4", "1"),
        TopicProblem(RAW.name, "message.timestamp.type", "LogAppendTime", "CreateTime"),
        TopicProblem(EVENTS.name, "retention.ms", "-1", "604800000"),
    ]
    assert str(check_topics(admin, [RAW])[0]) == f"topic {RAW.name}: partitions is 1, declared 4"
