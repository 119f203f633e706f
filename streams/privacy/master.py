"""The master key that wraps data keys, behind the shape of a KMS (`wrap`/`unwrap`).

`LocalMasterKey` holds an AES-256 key read from a file or an environment variable; a KMS
client (AWS KMS Encrypt/Decrypt, Vault transit) can replace it by implementing `MasterKey`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from streams.privacy.errors import NoMasterKey, WrongMasterKey

ENV_KEY = "STREAMS_MASTER_KEY"
"""Environment variable holding the master key: 32 bytes, base64."""
ENV_KEY_FILE = "STREAMS_MASTER_KEY_FILE"
"""Environment variable naming a file that holds the master key (base64, one line)."""
_NONCE = 12


class MasterKey(Protocol):
    """Wraps and unwraps data keys, as a KMS does; `key_id` names the key a wrapping used."""

    @property
    def key_id(self) -> str:
        """A stable, non-secret name of this master key (stored beside each wrapped key)."""
        ...

    def wrap(self, secret: bytes, context: bytes) -> bytes:
        """`secret` encrypted under the master key, bound to `context`."""
        ...

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
        """The secret of `wrap`; `WrongMasterKey` when this key did not wrap it for `context`."""
        ...


class LocalMasterKey:
    """A master key held by the process (AES-256-GCM key wrap with a random nonce)."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) != 32:
            raise ValueError(f"a master key is 32 bytes, not {len(secret)}")
        self._aead = AESGCM(secret)
        self._id = "local:" + hashlib.sha256(b"streams-master-key-id" + secret).hexdigest()[:16]

    @property
    def key_id(self) -> str:
        """`local:` + a fingerprint of the key (not the key)."""
        return self._id

    @classmethod
    def parse(cls, text: str) -> LocalMasterKey:
        """A master key from its base64 text (`ValueError` saying what is wrong)."""
        try:
            secret = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("the master key is not base64") from None
        return cls(secret)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> LocalMasterKey:
        """The master key of `STREAMS_MASTER_KEY` or the file `STREAMS_MASTER_KEY_FILE` names
        (`NoMasterKey` when neither is set)."""
        env = dict(os.environ) if environ is None else environ
        if env.get(ENV_KEY):
            return cls.parse(env[ENV_KEY])
        if env.get(ENV_KEY_FILE):
            return cls.parse(Path(env[ENV_KEY_FILE]).read_text())
        raise NoMasterKey(
            f"personal fields need a master key: set {ENV_KEY} (32 bytes, base64) or {ENV_KEY_FILE}"
        )

    @staticmethod
    def generate() -> str:
        """A new master key's base64 text."""
        return base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()

    def wrap(self, secret: bytes, context: bytes) -> bytes:
        """nonce (12 bytes) | AES-GCM(secret) bound to `context`."""
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, secret, context)

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
        """The wrapped secret; `WrongMasterKey` when this key did not wrap it."""
        try:
            return self._aead.decrypt(wrapped[:_NONCE], wrapped[_NONCE:], context)
        except (InvalidTag, ValueError):
            raise WrongMasterKey(
                f"a data key does not unwrap with master key {self.key_id}: another master key "
                "wrapped it, or the stored key was altered (docs/privacy.md, rotating the master key)"
            ) from None
