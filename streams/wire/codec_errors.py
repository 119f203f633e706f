"""What can go wrong turning bytes into a message, or reaching the registry (`streams.wire.codec`).

Each `DecodeError` carries a machine-readable `reason`, the DLQ's `dlq_reason` header.
"""

from __future__ import annotations


class DecodeError(Exception):
    """A record cannot become a message. `reason` is machine-readable (DLQ header)."""

    reason = "decode_error"


class MalformedRecord(DecodeError):
    """Not Confluent Avro wire format, or the Avro body does not match its schema."""

    reason = "malformed_record"


class UnknownSchema(DecodeError):
    """The schema id is not known to the registry."""

    reason = "unknown_schema"


class UnknownType(DecodeError):
    """The schema is known, but its record type is not one this context handles."""

    reason = "unknown_type"


class NoUpcasterPath(DecodeError):
    """A version of a known type that Avro resolution cannot read and no upcaster chain covers."""

    reason = "no_upcaster_path"


class UpcastFailed(DecodeError):
    """An upcaster raised, or produced a record that does not match its target schema."""

    reason = "upcast_failed"


class MalformedField(DecodeError):
    """A personal field's bytes are not a sealed field (`streams.privacy.cipher`)."""

    reason = "malformed_ciphertext"


class TamperedField(DecodeError):
    """A personal field fails authentication: changed, or copied from another subject or field."""

    reason = "tampered_ciphertext"


class IncompatibleSchema(Exception):
    """The registry refused a schema version under its subject's compatibility rules (HTTP 409).

    Not retryable: a worker must not start with a schema the registry's rules reject.
    """


class RegistryUnavailable(Exception):
    """The registry could not be reached; the caller should retry, not drop the record."""
