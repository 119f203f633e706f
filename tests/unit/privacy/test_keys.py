"""Field ciphers, the master key and the keyring, with an in-memory key store."""

from __future__ import annotations

import base64

import pytest

from streams.privacy.cipher import HEADER_BYTES, DataKey, binding, key_id_of, open_sealed, seal
from streams.privacy.errors import MalformedCiphertext, NoMasterKey, TamperedCiphertext, WrongMasterKey
from streams.privacy.keys import Keyring, MemoryKeyStore
from streams.privacy.master import LocalMasterKey


def _master() -> LocalMasterKey:
    return LocalMasterKey.parse(LocalMasterKey.generate())


def test_a_sealed_field_opens_with_its_key_and_binding() -> None:
    key = DataKey.generate()
    bound = binding("c-1", "OrderPlaced", "customer_name")
    sealed = seal(key, b"Ada Lovelace", bound)
    assert sealed[0] == 1 and key_id_of(sealed) == key.key_id
    assert b"Ada" not in sealed
    assert open_sealed(key, sealed, bound) == b"Ada Lovelace"
    assert seal(key, b"Ada Lovelace", bound) != sealed  # a fresh nonce each time


@pytest.mark.parametrize(
    "other",
    [
        ("c-2", "OrderPlaced", "customer_name"),
        ("c-1", "PlaceOrder", "customer_name"),
        ("c-1", "OrderPlaced", "email"),
    ],
)
def test_a_sealed_field_moved_to_another_subject_type_or_field_is_tampered(
    other: tuple[str, str, str],
) -> None:
    key = DataKey.generate()
    sealed = seal(key, b"x", binding("c-1", "OrderPlaced", "customer_name"))
    with pytest.raises(TamperedCiphertext):
        open_sealed(key, sealed, binding(*other))


def test_a_flipped_bit_anywhere_after_the_key_id_is_tampered() -> None:
    key = DataKey.generate()
    bound = binding("c-1", "T", "f")
    sealed = seal(key, b"secret value", bound)
    for i in range(HEADER_BYTES - 12, len(sealed)):
        broken = bytearray(sealed)
        broken[i] ^= 0x01
        with pytest.raises(TamperedCiphertext):
            open_sealed(key, bytes(broken), bound)


def test_bytes_that_are_no_sealed_field_are_malformed() -> None:
    key = DataKey.generate()
    for data in (b"", b"\x01short", b"\x07" + bytes(60)):
        with pytest.raises(MalformedCiphertext):
            open_sealed(key, data, b"")


def test_the_keyring_creates_one_key_per_subject_and_forgets_it() -> None:
    store = MemoryKeyStore()
    ring = Keyring(store, _master())
    a = ring.for_write("A")
    assert ring.for_write("A") == a and ring.for_write("B") != a
    assert ring.for_read("A", a.key_id) == a
    assert store.get("A") is not None and a.secret not in store.get("A").wrapped  # type: ignore[union-attr]
    assert ring.forget("A") and store.get("A") is None and not ring.forget("A")
    assert ring.for_read("A", a.key_id) is None
    renewed = ring.for_write("A")  # a forgotten subject that comes back gets a new key
    assert renewed.key_id != a.key_id and ring.for_read("A", a.key_id) is None
    assert ring.for_read("A", renewed.key_id) == renewed


def test_another_process_forgetting_a_subject_takes_effect_on_eviction_or_expiry() -> None:
    store = MemoryKeyStore()
    now = [0.0]
    master = _master()
    worker = Keyring(store, master, ttl_s=10, clock=lambda: now[0])
    admin = Keyring(store, master)
    key = worker.for_write("A")
    admin.forget("A")
    assert worker.for_read("A", key.key_id) == key  # still cached
    worker.evict("A")  # on SubjectForgotten
    assert worker.for_read("A", key.key_id) is None
    other = worker.for_write("B")
    admin.forget("B")
    now[0] = 11.0  # the time to live bounds how long a missed SubjectForgotten matters
    assert worker.for_read("B", other.key_id) is None


def test_the_cache_holds_at_most_max_keys() -> None:
    ring = Keyring(MemoryKeyStore(), _master(), max_keys=2)
    for s in "ABC":
        ring.for_write(s)
    assert len(ring._cache) == 2 and "A" not in ring._cache


def test_a_wrong_master_key_is_named() -> None:
    store = MemoryKeyStore()
    key = Keyring(store, _master()).for_write("A")
    with pytest.raises(WrongMasterKey, match="master key"):
        Keyring(store, _master()).for_read("A", key.key_id)
    stored = store.get("A")
    assert stored is not None
    impostor = _master()
    with pytest.raises(WrongMasterKey):
        impostor.unwrap(stored.wrapped, b"anything")


def test_rotating_the_master_key_rewraps_every_key_and_keeps_the_data_keys() -> None:
    store = MemoryKeyStore()
    old, new = _master(), _master()
    ring = Keyring(store, old)
    keys = {s: ring.for_write(s) for s in "AB"}
    assert ring.rotate(new) == 2 and ring.rotate(new) == 0
    fresh = Keyring(store, new)
    assert all(fresh.for_read(s, k.key_id) == k for s, k in keys.items())


def test_the_master_key_comes_from_the_environment_or_a_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    text = LocalMasterKey.generate()
    path = tmp_path / "master.key"
    path.write_text(text + "\n")
    by_env = LocalMasterKey.from_env({"STREAMS_MASTER_KEY": text})
    by_file = LocalMasterKey.from_env({"STREAMS_MASTER_KEY_FILE": str(path)})
    assert by_env.key_id == by_file.key_id and text not in by_env.key_id
    with pytest.raises(NoMasterKey, match="STREAMS_MASTER_KEY"):
        LocalMasterKey.from_env({})
    with pytest.raises(ValueError, match="32 bytes"):
        LocalMasterKey.parse(base64.b64encode(b"short").decode())
    with pytest.raises(ValueError, match="base64"):
        LocalMasterKey.parse("not base64 !")
