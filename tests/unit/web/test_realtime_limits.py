"""The real-time limits count sockets and fit the open-files limit."""

from __future__ import annotations

import resource

import pytest

from streams.config import Settings
from streams.contexts.registry import get_context
from streams.kafka.runtime import Runtimes
from streams.web.realtime.hub import Hub, Refused
from streams.web.realtime.limits import fitted, raise_open_files_limit, stream_cap


def test_sockets_count_against_the_worker_cap_before_they_subscribe() -> None:
    """Reproduced: the cap counted subscribers, so WebSockets that never subscribe were free."""
    settings = Settings(realtime_max_clients=3, realtime_max_per_address=64)
    hub = Hub(settings, Runtimes(settings, {"orders": get_context("orders")}), lambda: None)
    for i in range(3):
        hub.connect(f"10.0.0.{i}")
    with pytest.raises(Refused) as refused:
        hub.connect("10.0.0.9")
    assert refused.value.status == 503
    hub.disconnect("10.0.0.0")
    hub.connect("10.0.0.9")


def test_the_caps_fit_the_open_files_limit() -> None:
    assert stream_cap(1024) == 512 and stream_cap(65536) == 65536 - 1024
    small = fitted(Settings(realtime_max_clients=20000, realtime_max_per_address=64), 100)
    assert small.realtime_max_clients == 50 and small.realtime_max_per_address == 50
    big = fitted(Settings(realtime_max_clients=20000, realtime_max_per_address=64), 1 << 20)
    assert big.realtime_max_clients == 20000 and big.realtime_max_per_address == 64


def test_the_soft_open_files_limit_is_raised_to_the_hard_one() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        if hard != resource.RLIM_INFINITY and hard > 256:
            resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        assert raise_open_files_limit() == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
