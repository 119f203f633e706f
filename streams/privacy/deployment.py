"""The keyring of a deployment: keys in its PostgreSQL, wrapped by the configured master key.

One keyring per process and database, so an eviction on `SubjectForgotten` reaches every codec
of the process.
"""

from __future__ import annotations

import threading

from streams.privacy.keys import Keyring
from streams.privacy.master import LocalMasterKey
from streams.privacy.postgres import PostgresKeyStore

_rings: dict[str, Keyring] = {}
_lock = threading.Lock()


def keyring_for(pg_dsn: str) -> Keyring:
    """The process's keyring for the key store at `pg_dsn` (`NoMasterKey` when no master key is
    configured: `STREAMS_MASTER_KEY` or `STREAMS_MASTER_KEY_FILE`)."""
    with _lock:
        ring = _rings.get(pg_dsn)
        if ring is None:
            ring = _rings[pg_dsn] = Keyring(PostgresKeyStore(pg_dsn), LocalMasterKey.from_env())
        return ring


def cached_keyrings() -> list[Keyring]:
    """The keyrings this process has built (what an eviction clears)."""
    with _lock:
        return list(_rings.values())
