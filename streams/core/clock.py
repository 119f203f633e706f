"""Time as the log writes it: ISO-8601 UTC text, and the one parser back to epoch milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> str:
    """The current time as ISO-8601 UTC with milliseconds (`2026-01-01T00:00:00.000Z`)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_to_ms(text: str) -> int:
    """An ISO-8601 time with a zone (`...Z` or `+01:00`) as epoch milliseconds.

    ValueError for anything else, including a time without a zone (it would be ambiguous).
    """
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone (e.g. ...Z)")
    return int(parsed.timestamp() * 1000)
