"""A key store of its own per test (a table dropped after it), on the stack's PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

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
