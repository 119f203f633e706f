"""The key store in PostgreSQL: one row per subject, deleted on erasure.

A deleted row is gone from the table at once, and from PostgreSQL's WAL, replicas and backups
when their retention passes (the erasure horizon, docs/privacy.md). A compacted Kafka topic would
not do: when its tombstone's older record is removed cannot be proven.
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg
from psycopg import sql

from streams.privacy.errors import KeyStoreUnavailable
from streams.privacy.keys import StoredKey

TABLE = "streams_subject_keys"


class PostgresKeyStore:
    """Wrapped data keys in table `table` (created when missing), over one autocommit connection
    that is reopened after a failure; a failure to reach PostgreSQL is `KeyStoreUnavailable`."""

    def __init__(self, dsn: str, table: str = TABLE) -> None:
        self.dsn, self.table_name, self.table = dsn, table, sql.Identifier(table)
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()

    def _run(self, query: sql.Composed, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=5)
                    self._conn.execute(
                        sql.SQL(
                            "CREATE TABLE IF NOT EXISTS {} (subject text PRIMARY KEY, key_id bytea NOT NULL, "
                            "wrapped bytea NOT NULL, master_id text NOT NULL, "
                            "created_at timestamptz NOT NULL DEFAULT now())"
                        ).format(self.table)
                    )
                cur = self._conn.execute(query, params)
                return cur.fetchall() if cur.description is not None else [(cur.rowcount,)]
            except psycopg.OperationalError as exc:
                if self._conn is not None:
                    self._conn.close()
                self._conn = None
                raise KeyStoreUnavailable(f"key store (PostgreSQL): {exc}") from exc

    def get(self, subject: str) -> StoredKey | None:
        """The subject's key."""
        rows = self._run(
            sql.SQL("SELECT key_id, wrapped, master_id FROM {} WHERE subject = %s").format(self.table),
            (subject,),
        )
        return StoredKey(subject, bytes(rows[0][0]), bytes(rows[0][1]), rows[0][2]) if rows else None

    def create(self, key: StoredKey) -> StoredKey:
        """Insert unless the subject has a key; the stored one."""
        self._run(
            sql.SQL(
                "INSERT INTO {} (subject, key_id, wrapped, master_id) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (subject) DO NOTHING"
            ).format(self.table),
            (key.subject, key.key_id, key.wrapped, key.master_id),
        )
        stored = self.get(key.subject)
        return stored if stored is not None else self.create(key)  # deleted in between: retry

    def delete(self, subject: str) -> bool:
        """Delete the subject's row."""
        rows = self._run(sql.SQL("DELETE FROM {} WHERE subject = %s").format(self.table), (subject,))
        return bool(rows and rows[0][0])

    def replace(self, key: StoredKey) -> None:
        """Rewrite a subject's wrapped key (master key rotation)."""
        self._run(
            sql.SQL("UPDATE {} SET wrapped = %s, master_id = %s WHERE subject = %s AND key_id = %s").format(
                self.table
            ),
            (key.wrapped, key.master_id, key.subject, key.key_id),
        )

    def subjects(self) -> list[str]:
        """Every subject with a key."""
        return [
            row[0] for row in self._run(sql.SQL("SELECT subject FROM {} ORDER BY subject").format(self.table))
        ]

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
