"""The JSON answers every endpoint shares."""

from __future__ import annotations

from typing import Any

from aiohttp import web


def problem(status: int, detail: str, **extra: Any) -> web.Response:
    """An error answer: `{"error": detail, ...}` with `status`."""
    return web.json_response({"error": detail, **extra}, status=status)


def ok(body: Any, status: int = 200) -> web.Response:
    """A JSON answer."""
    return web.json_response(body, status=status)
