"""The deployment's secret: `STREAMS_SECRET`, or one kept in Kafka for every worker to share.

Without `STREAMS_SECRET`, the first worker of a deployment writes 32 random bytes to a kept-forever,
single-partition topic of its own (`<prefix>__<app id>.secret`), and every worker uses the
record at that topic's lowest offset, so workers that start together still agree. Whoever may
read that topic may forge resume tokens and pose as a worker: protect it with Kafka ACLs, or set
`STREAMS_SECRET` (the same value on every worker).
"""

from __future__ import annotations

import logging
import os
import threading
import time

from streams.config import Settings
from streams.kafka import clients
from streams.kafka.readers import read_partition
from streams.kafka.runtime import ensure_topics
from streams.wire import topics
from streams.wire.topics import TopicSpec

log = logging.getLogger(__name__)


def secret_topic(settings: Settings) -> str:
    """The topic holding the deployment's secret."""
    return topics.secret_topic(settings.topic_prefix, settings.app_id)


def deployment_secret(settings: Settings) -> bytes:
    """The secret every worker of the deployment shares (blocking: may create its topic)."""
    if settings.secret:
        return settings.secret.encode()
    topic = secret_topic(settings)
    ensure_topics(settings, [TopicSpec(topic, 1, {"cleanup.policy": "delete", "retention.ms": "-1"})])
    first = read_partition(settings, topic, 0)
    if not first:
        producer = clients.producer(settings)
        producer.produce(topic, os.urandom(32), b"secret", partition=0)
        if producer.flush(30):
            raise TimeoutError(f"the deployment secret was not written to {topic}")
        first = read_partition(settings, topic, 0)
    if not first or not first[0].value():
        raise RuntimeError(f"no deployment secret in {topic}")
    return bytes(first[0].value())


class DeploymentSecret:
    """The secret, fetched once on first `get()` (blocking, retried while Kafka is away)."""

    def __init__(self, settings: Settings, *, wait_s: float = 300.0) -> None:
        self.settings = settings
        self.wait_s = wait_s
        self._value: bytes | None = settings.secret.encode() if settings.secret else None
        self._lock = threading.Lock()

    def get(self) -> bytes:
        """The secret (blocking on first use)."""
        with self._lock:
            if self._value is None:
                deadline = time.monotonic() + self.wait_s
                delay = 0.5
                while True:
                    try:
                        self._value = deployment_secret(self.settings)
                        break
                    except Exception:
                        if time.monotonic() > deadline:
                            raise
                        log.warning(
                            "deployment secret not readable yet; retrying in %.1fs", delay, exc_info=True
                        )
                        time.sleep(delay)
                        delay = min(delay * 2, 10.0)
            return self._value

    def ready(self) -> bytes | None:
        """The secret if it was fetched already (never blocks)."""
        return self._value
