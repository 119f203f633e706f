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
loop (the scan itself: `streams.read.documents.ViewDocuments.scan`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from streams.read.documents import BUDGET_S, MAX_SCANNED, ViewDocuments
from streams.web.query.params import document_json


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


def local_page(
    documents: ViewDocuments,
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
    run it in an executor), in the API's form. `max_bytes`: the documents found may not pass it
    (bar one per partition)."""
    found = documents.scan(
        after,
        limit,
        filters,
        partitions=partitions,
        max_scanned=max_scanned,
        budget_s=budget_s,
        max_bytes=max_bytes,
    )
    items = [document_json(view, doc) for doc in found.documents]
    return LocalPage(items, found.horizon, found.partitions, found.missing, found.sizes)


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
