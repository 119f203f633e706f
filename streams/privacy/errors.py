"""What can go wrong sealing or opening a personal field, or reaching the keys."""

from __future__ import annotations


class PrivacyError(Exception):
    """Base of the privacy errors. `reason` is machine-readable (a DLQ's `dlq_reason`)."""

    reason = "privacy_error"


class MalformedCiphertext(PrivacyError):
    """The bytes are not a sealed field of a known format version (too short, unknown version)."""

    reason = "malformed_ciphertext"


class TamperedCiphertext(PrivacyError):
    """The authentication tag does not match: the ciphertext, its key id, or what it is bound to
    (subject, type, field) was changed, or it was copied to another subject or field."""

    reason = "tampered_ciphertext"


class WrongMasterKey(PrivacyError):
    """A data key cannot be unwrapped with the configured master key (another master key wrapped
    it, or the wrapped key was altered). A configuration error: every record would fail alike."""

    reason = "wrong_master_key"


class NoMasterKey(PrivacyError):
    """Personal fields are declared but no master key is configured."""

    reason = "no_master_key"


class KeyStoreUnavailable(PrivacyError):
    """The key store could not be reached; the caller should retry, not drop the record."""

    reason = "key_store_unavailable"
