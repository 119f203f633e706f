"""The real-time caps a worker can keep: each stream holds a socket, so a worker cannot hold
more streams than it may open files. At start the soft `RLIMIT_NOFILE` is raised to the hard one,
and the streams cap (`STREAMS_REALTIME_MAX_CLIENTS`) is lowered to what is left after the files
the rest of the worker needs (Kafka clients, RocksDB, the registry and forwarding sessions)."""

from __future__ import annotations

import dataclasses
import logging
import resource

from streams.config import Settings

log = logging.getLogger(__name__)

RESERVED_FILES = 1024
"""Open files kept for the worker itself, when the limit allows (at most half of it)."""


def raise_open_files_limit() -> int:
    """Raise the soft limit on open files to the hard one; the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft == resource.RLIM_INFINITY:
        return soft if soft != resource.RLIM_INFINITY else 1 << 20
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            log.warning("could not raise the open-files limit from %d to %d", soft, hard)
    return soft


def stream_cap(open_files: int) -> int:
    """Real-time streams a worker with `open_files` may hold (each one a socket)."""
    return max(1, open_files - min(RESERVED_FILES, open_files // 2))


def fitted(settings: Settings, open_files: int) -> Settings:
    """`settings` with the real-time caps no higher than `open_files` allows."""
    cap = min(settings.realtime_max_clients, stream_cap(open_files))
    if cap < settings.realtime_max_clients:
        log.warning(
            "STREAMS_REALTIME_MAX_CLIENTS %d lowered to %d: %d open files allowed (RLIMIT_NOFILE)",
            settings.realtime_max_clients,
            cap,
            open_files,
        )
    per_address = min(settings.realtime_max_per_address, cap)
    return dataclasses.replace(settings, realtime_max_clients=cap, realtime_max_per_address=per_address)
