"""The web event loop among the stage threads: the switch interval and the loop's delay gauge."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Iterator

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


async def gauge_set(condition: Callable[[float], bool], timeout_s: float = 5.0) -> float:
    """The delay gauge's value once `condition` holds for it (the probe runs on the same loop)."""
    deadline = time.monotonic() + timeout_s
    while not condition(value := float(metrics.EVENT_LOOP_DELAY._value.get())):
        assert time.monotonic() < deadline, f"the delay gauge stayed at {value}"
        await asyncio.sleep(0)  # yield to the probe
    return value


def test_a_blocked_loop_shows_in_the_delay_gauge() -> None:
    async def run() -> tuple[float, float]:
        metrics.EVENT_LOOP_DELAY.set(-1.0)
        probe = asyncio.create_task(watch_loop_delay(every_s=0.05))
        idle = await gauge_set(lambda v: v >= 0)  # a probe on an idle loop
        time.sleep(0.3)  # the loop is held: the probe's timer fires late (what is tested)
        held = await gauge_set(lambda v: v >= 0.2)
        probe.cancel()
        return idle, held

    idle, held = asyncio.run(run())
    assert idle < 0.1 and held >= 0.2
