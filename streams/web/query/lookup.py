"""What a read request names, looked up: the context's read side and its view (`NotFound`,
or `Starting` while this worker has not started serving it yet)."""

from __future__ import annotations

from streams.config import Settings
from streams.read.readside import ContextReadSide, WorkerReadSide
from streams.web.responses import NotFound, Starting


class ReadLookup:
    """Finds the read side of a context, and its views, for the document and aggregate endpoints."""

    def __init__(self, settings: Settings, read_side: WorkerReadSide) -> None:
        self.settings = settings
        self.read_side = read_side

    @property
    def url(self) -> str:
        """This worker's advertised URL."""
        return self.read_side.url

    def side(self, context: str) -> ContextReadSide:
        """The read side of `context` on this worker."""
        side = self.read_side.sides.get(context)
        if side is None:
            if context in self.settings.contexts and self.settings.read_side:
                raise Starting(f"the read side of {context} is starting; retry in a moment")
            raise NotFound(f"unknown context {context!r}")
        return side

    def view(self, context: str, view: str) -> ContextReadSide:
        """The read side of `context`, which has a view `view`."""
        side = self.side(context)
        if view not in side.views:
            raise NotFound(f"unknown view {view!r}; known: {', '.join(side.views)}")
        return side
