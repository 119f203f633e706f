"""RocksDB (rocksdict) state of the partitions a worker owns, mirrored by a changelog topic.

Writes reach RocksDB only after the Kafka transaction that carried them to the changelog has
committed, together with the changelog offset they reach (the checkpoint). After a crash the
store is at most behind, never ahead: restoring replays the changelog from the checkpoint.
"""

from __future__ import annotations

import shutil
import struct
from collections.abc import Mapping
from pathlib import Path

from rocksdict import Options, Rdict, WriteBatch

CHECKPOINT_KEY = b"\x00checkpoint"
AGGREGATE_PREFIX = b"a:"
COMMAND_PREFIX = b"c:"
_OFFSET = struct.Struct(">q")


class PartitionStore:
    """Key/value state of one partition, with the changelog offset it reflects."""

    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        options.set_max_open_files(256)
        self.path = path
        self._db = Rdict(str(path), options)

    def get(self, key: bytes) -> bytes | None:
        """The stored value, or None."""
        value = self._db.get(key)
        return value if value is None else bytes(value)

    @property
    def checkpoint(self) -> int:
        """The changelog offset to resume restoring from (0 for a new store)."""
        raw = self._db.get(CHECKPOINT_KEY)
        return 0 if raw is None else _OFFSET.unpack(raw)[0]

    def apply(self, writes: Mapping[bytes, bytes | None], checkpoint: int) -> None:
        """Write (or delete, for None) many keys and the new checkpoint atomically."""
        batch = WriteBatch(raw_mode=True)
        for key, value in writes.items():
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        batch.put(CHECKPOINT_KEY, _OFFSET.pack(checkpoint))
        self._db.write(batch)

    def items(self, prefix: bytes) -> list[tuple[bytes, bytes]]:
        """Every (key, value) whose key starts with `prefix` (for audits and tests)."""
        out = []
        for key, value in self._db.items(from_key=prefix):
            if not bytes(key).startswith(prefix):
                break
            out.append((bytes(key), bytes(value)))
        return out

    def close(self) -> None:
        """Release the RocksDB handle."""
        self._db.close()

    def destroy(self) -> None:
        """Close and delete the files (the changelog still holds everything)."""
        self.close()
        shutil.rmtree(self.path, ignore_errors=True)
