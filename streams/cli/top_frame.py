"""What `streams top` shows, computed from two samples of a worker's `/metrics` (pure: no I/O).

The same figures as the worker's `/dashboard` page: rates are the counters' increase between the
two samples over the time between them, quantiles are those of the histogram counts added between
them, computed as Prometheus' `histogram_quantile` does (linear within a bucket), and the lags are
the newer sample's gauges.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

Labels = tuple[tuple[str, str], ...]
"""A sample's labels, sorted by name."""


@dataclass(frozen=True)
class Sample:
    """One reading of `/metrics`: every sample's value by (name, labels), at `at` (seconds)."""

    at: float
    values: dict[tuple[str, Labels], float]

    @classmethod
    def parse(cls, text: str, at: float) -> Sample:
        """A sample from Prometheus' text format."""
        values: dict[tuple[str, Labels], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return cls(at, values)

    def grouped(
        self,
        name: str,
        key: Callable[[dict[str, str]], str],
        keep: Callable[[dict[str, str]], bool] | None = None,
    ) -> dict[str, float]:
        """The sum of a metric's samples grouped by `key(labels)` (those `keep` accepts)."""
        sums: dict[str, float] = {}
        for (found, labels), value in self.values.items():
            if found != name:
                continue
            as_dict = dict(labels)
            if keep is not None and not keep(as_dict):
                continue
            k = key(as_dict)
            sums[k] = sums.get(k, 0.0) + value
        return sums

    def total(self, name: str) -> float:
        """The sum of all a metric's samples."""
        return sum(self.grouped(name, lambda _: "").values())


def rates(
    old: Sample,
    new: Sample,
    name: str,
    key: Callable[[dict[str, str]], str],
    keep: Callable[[dict[str, str]], bool] | None = None,
) -> dict[str, float]:
    """Per-second increase of a counter between two samples, by key (a reset counts from 0)."""
    dt = max(new.at - old.at, 1e-9)
    before = old.grouped(name, key, keep)
    out = {}
    for k, value in new.grouped(name, key, keep).items():
        increase = value - before.get(k, 0.0)
        out[k] = (increase if increase >= 0 else value) / dt
    return out


def quantiles(
    old: Sample, new: Sample, name: str, key: Callable[[dict[str, str]], str], qs: Iterable[float]
) -> dict[str, dict[float, float]]:
    """Quantiles of the observations a histogram gained between two samples, by key (keys that
    gained none are left out)."""

    def buckets(sample: Sample) -> dict[str, dict[float, float]]:
        by: dict[str, dict[float, float]] = {}
        for (found, labels), value in sample.values.items():
            if found != name + "_bucket":
                continue
            as_dict = dict(labels)
            le = math.inf if as_dict["le"] == "+Inf" else float(as_dict["le"])
            edges = by.setdefault(key({k: v for k, v in as_dict.items() if k != "le"}), {})
            edges[le] = edges.get(le, 0.0) + value
        return by

    before, after = buckets(old), buckets(new)
    out: dict[str, dict[float, float]] = {}
    for k, edges in after.items():
        les = sorted(edges)
        counts = [edges[le] - before.get(k, {}).get(le, 0.0) for le in les]
        if not counts or counts[-1] <= 0:
            continue
        out[k] = {q: bucket_quantile(q, les, counts) for q in qs}
    return out


def bucket_quantile(q: float, les: list[float], counts: list[float]) -> float:
    """`histogram_quantile(q)` of cumulative bucket `counts` with upper edges `les` (the last +Inf)."""
    rank = q * counts[-1]
    i = next(i for i, c in enumerate(counts) if c >= rank)
    upper, lower = les[i], les[i - 1] if i > 0 else 0.0
    if math.isinf(upper):
        return lower
    below = counts[i - 1] if i > 0 else 0.0
    return lower + (upper - lower) * (rank - below) / max(counts[i] - below, 1e-9)


@dataclass(frozen=True)
class Frame:
    """One screen of `streams top`."""

    seconds: float
    """Between the two samples."""
    accepted_per_s: float
    rejected_per_s: dict[str, float]
    """By status and reason (`rejected: version_conflict`)."""
    latency_s: dict[float, float]
    """Command -> result quantiles (0.5, 0.95, 0.99) of the commands between the samples."""
    events_per_s: dict[str, float]
    """By context."""
    lag: dict[tuple[str, str, int], float]
    """(group, topic, partition) -> records."""
    dlq_per_s: dict[str, float]
    """By `context: reason` (the write side) and `view: reason` (views)."""
    aborts: dict[str, float] = field(default_factory=dict)
    """Transaction aborts (retries) between the samples, by `context: cause`."""
    aborts_total: float = 0.0
    rebalances: dict[str, float] = field(default_factory=dict)
    """Rebalances between the samples, by group."""
    rebalances_total: float = 0.0
    accepted_total: float = 0.0
    rejected_total: float = 0.0
    rss_bytes: float = 0.0
    cpu_share: float = 0.0
    """CPU seconds per second between the samples (1.0: one core)."""


QUANTILES = (0.5, 0.95, 0.99)


def frame(old: Sample, new: Sample) -> Frame:
    """The frame of the worker's activity between two samples of its `/metrics`."""
    commands = rates(old, new, "streams_commands_total", _outcome)
    accepted = commands.pop("accepted", 0.0)
    latency = quantiles(old, new, "streams_command_latency_seconds", lambda _: "", QUANTILES).get("", {})
    dlq = rates(
        old, new, "streams_dlq_records_total", lambda labels: f"{labels['context']}: {labels['reason']}"
    )
    dlq.update(
        rates(
            old, new, "streams_view_dlq_records_total", lambda labels: f"{labels['view']}: {labels['reason']}"
        )
    )
    dt = max(new.at - old.at, 1e-9)
    aborts = {
        k: v * dt
        for k, v in rates(
            old,
            new,
            "streams_transaction_retries_total",
            lambda labels: f"{labels['context']}: {labels['cause']}",
        ).items()
    }
    rebalances = {
        k: v * dt
        for k, v in rates(
            old, new, "streams_consumer_rebalances_total", lambda labels: labels["group"]
        ).items()
    }
    lag = {
        (labels["group"], labels["topic"], int(labels["partition"])): value
        for (name, raw), value in new.values.items()
        if name == "streams_consumer_lag_records" and (labels := dict(raw))
    }
    accepted_total = new.grouped("streams_commands_total", _outcome).get("accepted", 0.0)
    cpu = rates(old, new, "process_cpu_seconds_total", lambda _: "").get("", 0.0)
    return Frame(
        seconds=new.at - old.at,
        accepted_per_s=accepted,
        rejected_per_s=commands,
        latency_s=latency,
        events_per_s=rates(old, new, "streams_events_appended_total", lambda labels: labels["context"]),
        lag=dict(sorted(lag.items())),
        dlq_per_s=dlq,
        aborts=aborts,
        aborts_total=new.total("streams_transaction_retries_total"),
        rebalances=rebalances,
        rebalances_total=new.total("streams_consumer_rebalances_total"),
        accepted_total=accepted_total,
        rejected_total=new.total("streams_commands_total") - accepted_total,
        rss_bytes=new.total("process_resident_memory_bytes"),
        cpu_share=cpu,
    )


def _outcome(labels: dict[str, str]) -> str:
    status, reason = labels.get("status", ""), labels.get("reason", "")
    if status == "accepted":
        return "accepted"
    return f"{status}: {reason}" if reason else status
