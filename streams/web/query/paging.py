"""Filtered pages of a view's documents, merged across partitions and workers without losing any.

Every partition is scanned in key (entity id) order from the cursor, until it has `limit`
matches, runs out of documents, or the scan's budget (documents examined, time) is spent. A
partition that stopped early reports how far it looked (`horizon`): a document past it may still
match. So a merged page holds only documents up to the smallest horizon, and its cursor (`next`)
resumes exactly there: concatenated pages are the full result, in order, without duplicates.
Scans run off the event loop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from streams.read.projector import DOC_PREFIX, ViewProjector, decode_document
from streams.web.query.params import document_json

MAX_SCANNED = 20_000
"""Documents one request may examine on one worker before it answers with what it has."""
BUDGET_S = 0.5
"""Seconds one request may scan on one worker before it answers with what it has."""


@dataclass
class LocalPage:
    """What one worker found: matches in id order, and how far it looked (None: to the end)."""

    items: list[dict[str, Any]] = field(default_factory=list)
    horizon: str | None = None
    partitions: list[int] = field(default_factory=list)


def local_page(
    projector: ViewProjector,
    view: str,
    after: str,
    limit: int,
    filters: dict[str, str],
    *,
    max_scanned: int = MAX_SCANNED,
    budget_s: float = BUDGET_S,
) -> LocalPage:
    """Scan this worker's partitions of a view (blocking: run it in an executor)."""
    page = LocalPage(partitions=sorted(projector.stores))
    deadline = time.monotonic() + budget_s
    start = DOC_PREFIX + after.encode() + b"\x00" if after else None
    scanned = 0
    for partition in page.partitions:
        store = projector.store(partition)
        if store is None:  # revoked meanwhile: its documents are the new owner's
            page.partitions.remove(partition)
            continue
        found = 0
        last = after
        try:
            for key, raw in store.scan(DOC_PREFIX, start):
                last = key[len(DOC_PREFIX) :].decode()
                scanned += 1
                doc = decode_document(last, raw)
                if doc.state is not None and all(str(doc.state.get(k)) == v for k, v in filters.items()):
                    page.items.append(document_json(view, doc))
                    found += 1
                if found >= limit or scanned >= max_scanned or time.monotonic() > deadline:
                    page.horizon = last if page.horizon is None else min(page.horizon, last)
                    break
        except Exception:  # the store was closed under the scan (a rebalance): looked up to `last`
            page.horizon = last if page.horizon is None else min(page.horizon, last)
    return page


def merge(pages: list[LocalPage], limit: int) -> tuple[list[dict[str, Any]], str | None]:
    """One page of at most `limit` documents out of the workers' pages, and its cursor."""
    horizons = [p.horizon for p in pages if p.horizon is not None]
    horizon = min(horizons) if horizons else None
    candidates = sorted(
        (item for p in pages for item in p.items if horizon is None or item["entity_id"] <= horizon),
        key=lambda item: item["entity_id"],
    )
    page = candidates[:limit]
    if len(candidates) > limit:
        return page, page[-1]["entity_id"]
    return page, horizon
