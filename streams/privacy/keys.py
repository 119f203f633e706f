"""Data keys per subject: where wrapped keys are stored, and the keyring workers ask.

A `KeyStore` keeps one wrapped data key per subject (PostgreSQL in a deployment,
`streams.privacy.postgres`; in memory in tests). Deleting a subject's row is the erasure: every
ciphertext sealed under it is unreadable from then on. The `Keyring` unwraps keys with the master
key and keeps them in memory briefly (bounded, with a time to live, evicted on `forget`/`evict`).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from streams.privacy.cipher import DataKey
from streams.privacy.errors import WrongMasterKey
from streams.privacy.master import MasterKey


@dataclass(frozen=True, slots=True)
class StoredKey:
    """A subject's data key as stored: its id, its secret wrapped, and which master key wrapped it."""

    subject: str
    key_id: bytes
    wrapped: bytes
    master_id: str


class KeyStore(Protocol):
    """Where wrapped data keys live: one per subject."""

    def get(self, subject: str) -> StoredKey | None:
        """The subject's key (None: never created, or forgotten)."""
        ...

    def create(self, key: StoredKey) -> StoredKey:
        """Store `key` unless the subject has one; return the one stored (the first writer wins)."""
        ...

    def delete(self, subject: str) -> bool:
        """Delete the subject's key (True: there was one)."""
        ...

    def replace(self, key: StoredKey) -> None:
        """Store a rewrapped key (same id and secret, new master key); for master key rotation."""
        ...

    def subjects(self) -> list[str]:
        """Every subject with a key (master key rotation walks them)."""
        ...


class MemoryKeyStore:
    """A key store in a dict (tests, offline tools): nothing survives the process."""

    def __init__(self) -> None:
        self._keys: dict[str, StoredKey] = {}
        self._lock = threading.Lock()

    def get(self, subject: str) -> StoredKey | None:
        """The subject's key."""
        return self._keys.get(subject)

    def create(self, key: StoredKey) -> StoredKey:
        """The first key stored for the subject."""
        with self._lock:
            return self._keys.setdefault(key.subject, key)

    def delete(self, subject: str) -> bool:
        """Delete the subject's key."""
        with self._lock:
            return self._keys.pop(subject, None) is not None

    def replace(self, key: StoredKey) -> None:
        """Store a rewrapped key."""
        with self._lock:
            self._keys[key.subject] = key

    def subjects(self) -> list[str]:
        """Every subject with a key."""
        return sorted(self._keys)


def _context(subject: str, key_id: bytes) -> bytes:
    """What a wrapped key is bound to: a wrapped key moved to another subject does not unwrap."""
    return b"streams-data-key\x00" + subject.encode() + b"\x00" + key_id


class Keyring:
    """Unwrapped data keys by subject, from a key store and a master key, cached briefly.

    At most `max_keys` keys are cached, each for `ttl_s` seconds (least recently used first
    out); `forget` deletes a key from the store and the cache, `evict` (on a `SubjectForgotten`
    another process appended) only from the cache. The time to live bounds how long a process
    that missed a `SubjectForgotten` can still open the subject's fields.
    """

    def __init__(
        self,
        store: KeyStore,
        master: MasterKey,
        *,
        ttl_s: float = 60.0,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store, self.master = store, master
        self.ttl_s, self.max_keys, self._clock = ttl_s, max_keys, clock
        self._cache: OrderedDict[str, tuple[float, DataKey]] = OrderedDict()
        self._dead: OrderedDict[tuple[str, bytes], None] = OrderedDict()
        self._lock = threading.Lock()
        self.evictions = 0
        """How many times a subject's key was evicted (`forget`, `evict`): a change tells holders of
        decoded values (the write side's cached states) that a subject may have been forgotten."""

    def for_write(self, subject: str) -> DataKey:
        """The subject's key, created when it has none (a forgotten subject gets a new one)."""
        key = self._cached(subject)
        if key is not None:
            return key
        stored = self.store.get(subject)
        if stored is None:
            fresh = DataKey.generate()
            wrapped = self.master.wrap(fresh.secret, _context(subject, fresh.key_id))
            stored = self.store.create(StoredKey(subject, fresh.key_id, wrapped, self.master.key_id))
            key = fresh if stored.key_id == fresh.key_id else self._unwrap(stored)
        else:
            key = self._unwrap(stored)
        self._remember(subject, key)
        return key

    def for_read(self, subject: str, key_id: bytes) -> DataKey | None:
        """The key `key_id` of the subject (None: it was deleted, the subject forgotten).

        Key ids are random and never reused, so a subject's key id found deleted is remembered
        as such (bounded): replaying a forgotten subject's records asks the store once."""
        if (subject, key_id) in self._dead:
            return None
        key = self._cached(subject)
        if key is not None and key.key_id == key_id:
            return key
        stored = self.store.get(subject)
        key = None if stored is None else self._unwrap(stored)
        if key is not None:
            self._remember(subject, key)
        if key is None or key.key_id != key_id:
            with self._lock:
                self._dead[(subject, key_id)] = None
                while len(self._dead) > self.max_keys:
                    self._dead.popitem(last=False)
            return None
        return key

    def forget(self, subject: str) -> bool:
        """Delete the subject's key: everything sealed under it is unreadable (True: it had one)."""
        deleted = self.store.delete(subject)
        self.evict(subject)
        return deleted

    def evict(self, subject: str) -> None:
        """Drop the subject's key from this process's cache."""
        with self._lock:
            self._cache.pop(subject, None)
            self.evictions += 1

    def clear(self) -> None:
        """Drop every cached key."""
        with self._lock:
            self._cache.clear()

    def rotate(self, new_master: MasterKey) -> int:
        """Rewrap every stored key with `new_master` (the data keys, hence the log, are
        unchanged); returns how many were rewrapped. Keys already under it are skipped."""
        count = 0
        for subject in self.store.subjects():
            stored = self.store.get(subject)
            if stored is None or stored.master_id == new_master.key_id:
                continue
            secret = self._unwrap(stored).secret
            context = _context(subject, stored.key_id)
            rewrapped = new_master.wrap(secret, context)
            self.store.replace(StoredKey(subject, stored.key_id, rewrapped, new_master.key_id))
            count += 1
        self.master = new_master
        self.clear()
        return count

    def _unwrap(self, stored: StoredKey) -> DataKey:
        if stored.master_id != self.master.key_id:
            raise WrongMasterKey(
                f"the data key of a subject was wrapped by master key {stored.master_id}, "
                f"the configured one is {self.master.key_id} (docs/privacy.md: rotating the master key)"
            )
        return DataKey(
            stored.key_id, self.master.unwrap(stored.wrapped, _context(stored.subject, stored.key_id))
        )

    def _cached(self, subject: str) -> DataKey | None:
        with self._lock:
            hit = self._cache.get(subject)
            if hit is None:
                return None
            if hit[0] <= self._clock():
                del self._cache[subject]
                return None
            self._cache.move_to_end(subject)
            return hit[1]

    def _remember(self, subject: str, key: DataKey) -> None:
        with self._lock:
            self._cache[subject] = (self._clock() + self.ttl_s, key)
            self._cache.move_to_end(subject)
            while len(self._cache) > self.max_keys:
                self._cache.popitem(last=False)


def ephemeral_keyring() -> Keyring:
    """A keyring in memory with a random master key (tests, offline codecs): nothing persists."""
    from streams.privacy.master import LocalMasterKey

    return Keyring(MemoryKeyStore(), LocalMasterKey.parse(LocalMasterKey.generate()))
