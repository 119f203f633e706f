"""The audited record of an erasure: `SubjectForgotten` on the deployment's privacy topic.

It carries the subject's (pseudonymous) id, when, whether a key was deleted and who asked: no
personal data. Workers evict the subject's cached key when they read it (`streams.kafka.forgetting`).
"""

from __future__ import annotations

from msgspec import Struct

from streams.wire.codec import AvroCodec
from streams.wire.schemas import SCHEMAS_DIR, SchemaCatalog


class SubjectForgotten(Struct, frozen=True):
    """A data subject's key was deleted (schema `streams.SubjectForgotten`)."""

    subject: str
    forgotten_at: str
    key_deleted: bool
    origin: str = ""


def forgotten_catalog() -> SchemaCatalog:
    """The catalog of the privacy topic's one record type."""
    return SchemaCatalog([SCHEMAS_DIR / "streams"], (SubjectForgotten,))


def offline_codec() -> AvroCodec:
    """A codec of `SubjectForgotten` without a registry (tests, tools)."""
    return AvroCodec.offline(forgotten_catalog())
