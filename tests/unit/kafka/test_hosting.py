"""The restart loop's back-off: doubling while sessions keep failing, starting over after a
session that ran long enough to count as healthy."""

from __future__ import annotations

import threading

from streams.kafka import hosting
from streams.kafka.hosting import FIRST_DELAY_S, HEALTHY_S, MAX_DELAY_S, next_delay, restart_loop


def test_the_pause_doubles_while_sessions_fail_at_once() -> None:
    delay = FIRST_DELAY_S
    pauses = []
    for _ in range(7):
        pause, delay = next_delay(delay, ran_s=1.0)
        pauses.append(pause)
    assert pauses == [0.5, 1.0, 2.0, 4.0, 8.0, MAX_DELAY_S, MAX_DELAY_S]


def test_a_healthy_session_starts_the_doubling_over() -> None:
    pause, delay = next_delay(8.0, ran_s=HEALTHY_S)
    assert (pause, delay) == (FIRST_DELAY_S, 2 * FIRST_DELAY_S)
    assert next_delay(8.0, ran_s=HEALTHY_S - 1) == (8.0, MAX_DELAY_S)


def test_the_loop_waits_the_pause_of_each_failure(monkeypatch) -> None:
    clock = iter([0.0, 1.0, 10.0, 11.0, 100.0, 200.0])  # session start, failure, ...
    monkeypatch.setattr(hosting.time, "monotonic", lambda: next(clock))
    waits: list[float] = []

    class Stop(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            waits.append(timeout or 0.0)
            if len(waits) == 3:
                self.set()
            return self.is_set()

    stop = Stop()

    def session() -> None:
        raise RuntimeError("broker away")

    restart_loop("test", session, stop)
    assert waits == [FIRST_DELAY_S, 2 * FIRST_DELAY_S, FIRST_DELAY_S]  # the third ran 100 s
