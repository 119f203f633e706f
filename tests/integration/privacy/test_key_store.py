"""The PostgreSQL key store against the stack's PostgreSQL: one row per subject, gone on erasure."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from streams.contexts.orders import OrderPlaced
from streams.contexts.orders import context as orders
from streams.privacy.errors import WrongMasterKey
from streams.privacy.keys import Keyring
from streams.privacy.master import LocalMasterKey
from streams.privacy.postgres import PostgresKeyStore
from streams.wire.codec import AvroCodec
from streams.wire.schemas import catalog_for
from tests.conftest import StackEndpoints

pytestmark = pytest.mark.integration


def test_keys_are_created_once_read_back_by_another_process_and_deleted(
    store: PostgresKeyStore, stack: StackEndpoints
) -> None:
    master = LocalMasterKey.parse(LocalMasterKey.generate())
    writer = Keyring(store, master)
    a, b = writer.for_write("A"), writer.for_write("B")
    assert writer.for_write("A") == a
    reader = Keyring(PostgresKeyStore(stack.pg_dsn, store.table_name), master)
    assert reader.for_read("A", a.key_id) == a and reader.for_read("B", b.key_id) == b
    assert store.subjects() == ["A", "B"]
    assert writer.forget("A")
    with psycopg.connect(stack.pg_dsn, autocommit=True) as conn:
        rows = conn.execute(sql.SQL("SELECT subject FROM {}").format(store.table)).fetchall()
    assert rows == [("B",)]
    reader.evict("A")
    assert reader.for_read("A", a.key_id) is None and reader.for_read("B", b.key_id) == b


def test_a_forgotten_customer_has_no_row_and_reads_as_erased_through_the_orders_codec(
    store: PostgresKeyStore, stack: StackEndpoints
) -> None:
    master = LocalMasterKey.parse(LocalMasterKey.generate())
    catalog = catalog_for(orders)
    writer = AvroCodec.offline(catalog, Keyring(store, master))
    a = writer.encode(OrderPlaced("cust-A", "EUR", "Ada Lovelace", "ada@analytical.example"))
    b = writer.encode(OrderPlaced("cust-B", "EUR", "Bob Babbage", "bob@difference.example"))
    reader = AvroCodec.offline(catalog, Keyring(PostgresKeyStore(stack.pg_dsn, store.table_name), master))
    assert reader.decode(a).message.customer_name == "Ada Lovelace"  # another process, same keys

    Keyring(store, master).forget("cust-A")
    reader.keyring.evict("cust-A")  # what SubjectForgotten does in every worker
    with psycopg.connect(stack.pg_dsn, autocommit=True) as conn:
        rows = conn.execute(sql.SQL("SELECT subject, key_id, wrapped FROM {}").format(store.table)).fetchall()
    assert [r[0] for r in rows] == ["cust-B"]
    assert all(b"Ada" not in bytes(r[2]) and b"Bob" not in bytes(r[2]) for r in rows)
    assert reader.decode(a).message == OrderPlaced("cust-A", "EUR", None, None)
    assert reader.decode(b).message == OrderPlaced("cust-B", "EUR", "Bob Babbage", "bob@difference.example")
    fresh = AvroCodec.offline(catalog, Keyring(PostgresKeyStore(stack.pg_dsn, store.table_name), master))
    assert fresh.decode(a).message.customer_email is None  # a restarted worker, no cache


def test_a_wrong_master_key_is_a_named_error_not_a_plaintext_or_a_replacement(
    store: PostgresKeyStore,
) -> None:
    catalog = catalog_for(orders)
    sealed = AvroCodec.offline(catalog, Keyring(store, LocalMasterKey.parse(LocalMasterKey.generate())))
    data = sealed.encode(OrderPlaced("cust-A", "EUR", "Ada", None))
    other = AvroCodec.offline(catalog, Keyring(store, LocalMasterKey.parse(LocalMasterKey.generate())))
    with pytest.raises(WrongMasterKey, match="master key"):
        other.decode(data)


def test_rotating_the_master_key_rewraps_the_rows_and_the_data_still_opens(store: PostgresKeyStore) -> None:
    old, new = (LocalMasterKey.parse(LocalMasterKey.generate()) for _ in range(2))
    catalog = catalog_for(orders)
    data = AvroCodec.offline(catalog, Keyring(store, old)).encode(
        OrderPlaced("cust-A", "EUR", "Ada", "a@x.org")
    )
    assert Keyring(store, old).rotate(new) == 1
    stored = store.get("cust-A")
    assert stored is not None and stored.master_id == new.key_id
    assert AvroCodec.offline(catalog, Keyring(store, new)).decode(data).message.customer_name == "Ada"
    with pytest.raises(WrongMasterKey, match=new.key_id):
        AvroCodec.offline(catalog, Keyring(store, old)).decode(data)
