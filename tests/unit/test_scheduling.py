"""The web event loop among the stage threads: the switch interval and the loop's delay gauge."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator

import pytest

from streams import metrics
from streams.scheduling import set_switch_interval, watch_loop_delay


@pytest.fixture
def switch_interval() -> Iterator[None]:
    before = sys.getswitchinterval()
    yield
    sys.setswitchinterval(before)


@pytest.mark.usefixtures("switch_interval")
def test_the_switch_interval_is_set_in_milliseconds() -> None:
    assert set_switch_interval(1)
    assert sys.getswitchinterval() == pytest.approx(0.001)


@pytest.mark.usefixtures("switch_interval")
def test_zero_leaves_pythons_switch_interval() -> None:
    sys.setswitchinterval(0.005)
    assert not set_switch_interval(0)
    assert sys.getswitchinterval() == pytest.approx(0.005)


def test_a_blocked_loop_shows_in_the_delay_gauge() -> None:
    async def run() -> float:
        probe = asyncio.create_task(watch_loop_delay(every_s=0.05))
        await asyncio.sleep(0.12)  # a probe or two on an idle loop
        idle = metrics.EVENT_LOOP_DELAY._value.get()
        time.sleep(0.3)  # the loop is held: the probe's timer fires late
        await asyncio.sleep(0.02)
        probe.cancel()
        assert idle < 0.1
        return float(metrics.EVENT_LOOP_DELAY._value.get())

    assert asyncio.run(run()) >= 0.2
