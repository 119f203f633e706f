"""Scenario h applies our rules: the Kafka Streams topology (built from bench/peers/kstreams/, run
on TopologyTestDriver with its real RocksDB store, no broker) gives the same outcomes as
`streams.contexts.orders` on a traffic with rejections."""

from __future__ import annotations

import pytest

from bench.peers import kafka_streams
from bench.peers.wire import reference_outcomes
from tests.unit.bench.sample import sample


def test_kafka_streams_topology_gives_our_outcomes() -> None:
    try:
        java = kafka_streams.build()  # cached after the first build: no Maven, no javac
    except kafka_streams.NoJdk as missing:
        pytest.skip(f"no JDK 17+: {missing}")
    traffic = sample()
    expected = reference_outcomes(traffic)
    got = kafka_streams.rules_check(java, traffic)
    assert got["outcomes"] == dict(expected)
    assert got["accepted"] == sum(n for k, n in expected.items() if k.startswith("accepted:"))
    assert got["rejected"] == sum(n for k, n in expected.items() if k.startswith("rejected:"))
