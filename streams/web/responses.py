"""The JSON answers every endpoint shares."""

from __future__ import annotations

from typing import Any

from aiohttp import web


class Starting(Exception):
    """What was asked for exists, but this worker has not started serving it yet (503)."""


def problem(status: int, detail: str, *, headers: dict[str, str] | None = None, **extra: Any) -> web.Response:
    """An error answer: `{"error": detail, ...}` with `status`."""
    return web.json_response({"error": detail, **extra}, status=status, headers=headers)


def ok(body: Any, status: int = 200) -> web.Response:
    """A JSON answer."""
    return web.json_response(body, status=status)
