"""One personal field sealed with AES-256-GCM under its subject's data key.

Wire format (an Avro `bytes` value)::

    version (1 byte, 0x01) | key id (16 bytes) | nonce (12 bytes) | ciphertext + GCM tag (16 bytes)

The associated data binds the ciphertext to the format version, the key id, the subject, the
record type and the field: a ciphertext copied to another subject, type or field, or with an
altered key id, fails authentication (`TamperedCiphertext`). Nonces are random (96 bits); a data
key seals far fewer than the 2^32 messages that bound random nonces under one key.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from streams.privacy.errors import MalformedCiphertext, TamperedCiphertext

VERSION = 1
KEY_ID_BYTES = 16
NONCE_BYTES = 12
TAG_BYTES = 16
SECRET_BYTES = 32
HEADER_BYTES = 1 + KEY_ID_BYTES + NONCE_BYTES
_LENGTH = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class DataKey:
    """A subject's unwrapped data key: its id (written with every ciphertext) and AES-256 secret."""

    key_id: bytes
    secret: bytes = field(repr=False)
    aead: AESGCM = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.key_id) != KEY_ID_BYTES or len(self.secret) != SECRET_BYTES:
            raise ValueError("a data key has a 16-byte id and a 32-byte secret")
        object.__setattr__(self, "aead", AESGCM(self.secret))

    @classmethod
    def generate(cls) -> DataKey:
        """A fresh random key."""
        return cls(os.urandom(KEY_ID_BYTES), AESGCM.generate_key(bit_length=256))


def binding(subject: str, type_name: str, field_name: str) -> bytes:
    """What a ciphertext is bound to (length-prefixed, so no two bindings share bytes)."""
    parts = [p.encode() for p in (subject, type_name, field_name)]
    return b"".join(_LENGTH.pack(len(p)) + p for p in parts)


def seal(key: DataKey, plaintext: bytes, bound_to: bytes) -> bytes:
    """The sealed form of `plaintext` under `key`, bound to `bound_to` (see `binding`)."""
    header = bytes((VERSION,)) + key.key_id + os.urandom(NONCE_BYTES)
    return header + key.aead.encrypt(header[1 + KEY_ID_BYTES :], plaintext, header + bound_to)


def key_id_of(sealed: bytes) -> bytes:
    """The key id a sealed field names (`MalformedCiphertext` when it is not one)."""
    if len(sealed) < HEADER_BYTES + TAG_BYTES or sealed[0] != VERSION:
        version = sealed[0] if sealed else None
        raise MalformedCiphertext(
            f"not a sealed field (format version {version}, {len(sealed)} bytes; "
            f"expected version {VERSION}, at least {HEADER_BYTES + TAG_BYTES} bytes)"
        )
    return sealed[1 : 1 + KEY_ID_BYTES]


def open_sealed(key: DataKey, sealed: bytes, bound_to: bytes) -> bytes:
    """The plaintext of a sealed field; `TamperedCiphertext` when authentication fails."""
    if key_id_of(sealed) != key.key_id:
        raise TamperedCiphertext("the sealed field names another key than the one given")
    header = sealed[:HEADER_BYTES]
    try:
        return key.aead.decrypt(header[1 + KEY_ID_BYTES :], sealed[HEADER_BYTES:], header + bound_to)
    except InvalidTag:
        raise TamperedCiphertext(
            "authentication failed: the ciphertext or what it is bound to (subject, type, field) changed"
        ) from None
