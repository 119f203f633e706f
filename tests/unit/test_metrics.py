"""`streams.metrics.observe_ages`: a batch's record ages into a histogram, as `observe` per record."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram

from streams.metrics import observe_ages


def _child(name: str, registry: CollectorRegistry) -> Histogram:
    return Histogram(name, name, ["x"], buckets=(0.01, 0.1, 1, 10), registry=registry).labels("1")


def test_ages_land_in_the_buckets_and_sum_that_observe_gives() -> None:
    registry = CollectorRegistry()
    one_by_one, at_once = _child("a", registry), _child("b", registry)
    now = 100.05
    timestamps = [100.0, 100.0, 99.95, 99.0, 99.0, 99.0, 101.0, 90.0, 80.0, 99.9, 100.05 - 0.1, 99.0]
    for ts in timestamps:
        one_by_one.observe(max(now - ts, 0.0))
    observe_ages(at_once, now, timestamps)
    observe_ages(at_once, now, [])
    assert [b.get() for b in at_once._buckets] == [b.get() for b in one_by_one._buckets]
    assert abs(at_once._sum.get() - one_by_one._sum.get()) < 1e-9
