"""Filtered pages of a view's documents, merged across partitions and workers without losing any.

Every partition is scanned in key (entity id) order from the cursor, until it has `limit`
matches, runs out of documents, or the scan's budget (documents examined, time, bytes of the
documents found: `STREAMS_READ_PAGE_BYTES`) is spent. A
partition that stopped early reports how far it looked (`horizon`): a document past it may still
match. So a merged page holds only documents up to the smallest horizon, and its cursor (`next`)
resumes exactly there: concatenated pages are the full result, in order, without duplicates.
The merged page is cut at the byte budget too (its cursor is then its last document); a page
holds at least one document, so a document larger than the budget is served alone.

Each partition is scanned by one worker, the one the view's consumer group assigns it to (the
caller names the partitions it wants, so a partition that two workers hold for a moment during
a rebalance is not read twice). A worker that no longer holds a partition asked of it says so
(`missing`), and the caller answers 503 rather than a page with a hole. Scans run off the event
loop.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from streams.kafka.store import PartitionStore
from streams.read.projector import DOC_PREFIX, decode_document
from streams.web.query.params import document_json

MAX_SCANNED = 20_000
"""Documents one request may examine on one worker before it answers with what it has."""
BUDGET_S = 0.5
"""Seconds one request may scan on one worker before it answers with what it has."""


class DocumentStores(Protocol):
    """What holds a view's documents on one worker (a `ViewProjector`)."""

    @property
    def stores(self) -> Mapping[int, PartitionStore]:
        """The partitions this worker holds."""

    def store(self, partition: int) -> PartitionStore | None:
        """A partition's store, None when it is not held here (any more)."""


@dataclass
class LocalPage:
    """What one worker found: matches in id order, how far it looked (None: to the end), the
    partitions it scanned and those it was asked for but does not hold."""

    items: list[dict[str, Any]] = field(default_factory=list)
    horizon: str | None = None
    partitions: list[int] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    """Each item's size in bytes (its stored form), for the page's byte budget."""

    def stopped_at(self, key: str) -> None:
        """A partition stopped early at `key`: nothing past it is known."""
        self.horizon = key if self.horizon is None else min(self.horizon, key)


def _matches(state: dict[str, Any] | None, filters: Mapping[str, str]) -> bool:
    return state is not None and all(str(state.get(k)) == v for k, v in filters.items())


def local_page(
    source: DocumentStores,
    view: str,
    after: str,
    limit: int,
    filters: Mapping[str, str],
    *,
    partitions: Iterable[int] | None = None,
    max_scanned: int = MAX_SCANNED,
    budget_s: float = BUDGET_S,
    max_bytes: int | None = None,
) -> LocalPage:
    """Scan the named partitions of a view on this worker (default: all it holds; blocking:
    run it in an executor). `max_bytes`: the documents found may not pass it (bar one per
    partition)."""
    wanted = sorted(source.stores) if partitions is None else sorted(set(partitions))
    page = LocalPage()
    deadline = time.monotonic() + budget_s
    start = DOC_PREFIX + after.encode() + b"\x00" if after else None
    scanned = 0
    found_bytes = 0
    for partition in wanted:
        store = source.store(partition)
        if store is None:  # not held here (revoked meanwhile): its documents are another's
            page.missing.append(partition)
            continue
        found = 0
        last = after
        try:
            for key, raw in store.scan(DOC_PREFIX, start):
                last = key[len(DOC_PREFIX) :].decode()
                scanned += 1
                doc = decode_document(last, raw)
                if _matches(doc.state, filters):
                    page.items.append(document_json(view, doc))
                    page.sizes.append(len(raw))
                    found += 1
                    found_bytes += len(raw)
                full = max_bytes is not None and found_bytes >= max_bytes
                if found >= limit or full or scanned >= max_scanned or time.monotonic() > deadline:
                    page.stopped_at(last)
                    break
        except Exception:  # the store was closed under the scan (a rebalance): looked up to `last`
            page.stopped_at(last)
        page.partitions.append(partition)
    return page


def merge(
    pages: Iterable[LocalPage], limit: int, max_bytes: int | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of at most `limit` documents (and `max_bytes`, bar its first) out of the
    workers' pages, and its cursor."""
    pages = list(pages)
    horizons = [p.horizon for p in pages if p.horizon is not None]
    horizon = min(horizons) if horizons else None
    candidates = sorted(
        (
            (item, size)
            for p in pages
            for item, size in zip(p.items, p.sizes or [0] * len(p.items), strict=True)
            if horizon is None or item["entity_id"] <= horizon
        ),
        key=lambda pair: pair[0]["entity_id"],
    )
    page: list[dict[str, Any]] = []
    total = 0
    for item, size in candidates[:limit]:
        if page and max_bytes is not None and total + size > max_bytes:
            return page, page[-1]["entity_id"]
        page.append(item)
        total += size
    if len(candidates) > limit:
        return page, page[-1]["entity_id"]
    return page, horizon
