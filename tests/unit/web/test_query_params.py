"""The read API's query parameters, parsed from plain mappings."""

from __future__ import annotations

import pytest

from streams.web.query.params import BadParameter, int_param, timeout_param, timestamp_param


def test_an_integer_parameter_has_a_default_and_bounds() -> None:
    assert int_param({}, "limit", 50, low=1, high=1000) == 50
    assert int_param({"limit": ""}, "limit", 50) == 50
    assert int_param({"limit": "7"}, "limit", 50, low=1, high=1000) == 7
    with pytest.raises(BadParameter, match="limit must be between 1 and 1000"):
        int_param({"limit": "0"}, "limit", 50, low=1, high=1000)
    with pytest.raises(BadParameter, match="limit must be an integer, got 'ten'"):
        int_param({"limit": "ten"}, "limit", 50)


def test_the_timeout_is_seconds_up_to_a_minute() -> None:
    assert timeout_param({}) == 5.0
    assert timeout_param({"timeout": "0.5"}) == 0.5
    for bad in ("-1", "61", "soon"):
        with pytest.raises(BadParameter, match="timeout"):
            timeout_param({"timeout": bad})


def test_a_timestamp_is_iso_8601_with_a_zone_or_epoch_milliseconds() -> None:
    assert timestamp_param({}, "as_of") is None
    assert timestamp_param({"as_of": "1764547200000"}, "as_of") == 1_764_547_200_000
    assert timestamp_param({"as_of": "2025-12-01T00:00:00Z"}, "as_of") == 1_764_547_200_000
    assert timestamp_param({"as_of": "2025-12-01T01:00:00+01:00"}, "as_of") == 1_764_547_200_000
    for bad in ("yesterday", "2025-12-01T00:00:00"):
        with pytest.raises(BadParameter, match="as_of must be an ISO-8601 timestamp with a time zone"):
            timestamp_param({"as_of": bad}, "as_of")
