"""A test-only variant of the orders context (registered with STREAMS_CONTEXT_MODULES) with one
more view, `gated`: while the file named by `STREAMS_TEST_GATE` exists, its handler takes 0.2 s
an event, so its stage falls behind (it still polls between batches, and so still reports its
lag); once the file is gone it folds at full speed again."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from streams.contexts import orders
from streams.core.views import EventMeta, View

SLOW_S = 0.2


def count_events(state: dict[str, Any] | None, event: Any, meta: EventMeta) -> dict[str, Any]:
    """One document per order counting its events; slow while the gate file exists."""
    gate = os.environ.get("STREAMS_TEST_GATE", "")
    if gate and Path(gate).exists():
        time.sleep(SLOW_S)
    return {"events": (state or {}).get("events", 0) + 1}


GATED = View("gated", count_events)
context = replace(orders.context, views=(*orders.context.views, GATED))
