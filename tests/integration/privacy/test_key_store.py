"""The PostgreSQL key store against the stack's PostgreSQL: one row per subject, gone on erasure."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from streams.privacy.keys import Keyring
from streams.privacy.master import LocalMasterKey
from streams.privacy.postgres import PostgresKeyStore
from tests.conftest import StackEndpoints


@pytest.fixture
def store(stack: StackEndpoints, unique_name) -> Iterator[PostgresKeyStore]:  # type: ignore[no-untyped-def]
    table = unique_name("keys").replace("-", "_")
    s = PostgresKeyStore(stack.pg_dsn, table)
    yield s
    s.close()
    with psycopg.connect(stack.pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))


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
