"""librdkafka settings for the harness's own raw clients (those a test builds by hand)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from streams.config import Settings
from streams.kafka import clients


def kafka_config(bootstrap: str, **overrides: Any) -> dict[str, Any]:
    """`bootstrap` with the stack's security settings from the environment (on the secured stack
    the admin principal's SASL/TLS settings; nothing more on the default one), then `overrides`."""
    return {**clients.connection(replace(Settings(), bootstrap=bootstrap)), **overrides}
