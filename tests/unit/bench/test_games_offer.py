"""The games bench's load generator without Kafka: commands encoded as the client would, and the
rate it reached judged against the rate asked."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bench.games.offer import TICK_S, Offered, prepare
from streams.contexts.games import PlaceBet, RoundTerms, context
from streams.kafka.runtime import ContextRuntime

GAMES = ContextRuntime.offline(context)
TERMS = RoundTerms("r-1", "t", 100, 1_000, 100_000, 1, "odds-v1", "0" * 64)


def test_commands_are_encoded_with_the_contexts_codec_and_a_fresh_id_each() -> None:
    client = SimpleNamespace(runtime=GAMES)
    bets = [("r-1.p-1", PlaceBet(TERMS, "p-1", f"b{n}", "red", 100, 20_000, 1)) for n in range(2)]
    first, second = prepare(client, bets)  # type: ignore[arg-type]
    assert first.key == b"r-1.p-1" and first.command_id != second.command_id
    assert GAMES.codec.decode(first.value).message == bets[0][1]


def test_an_invalid_aggregate_id_is_refused_before_the_burst() -> None:
    with pytest.raises(ValueError):
        prepare(SimpleNamespace(runtime=GAMES), [("bad id\n", PlaceBet(TERMS, "p", "b", "red", 1, 1, 1))])  # type: ignore[arg-type]


def test_a_run_is_valid_only_when_sent_near_the_rate_asked_and_all_acknowledged() -> None:
    steady = Offered([n / 5000 for n in range(25_000)], 5.1, 0)
    assert steady.sent_rate() == pytest.approx(5000, rel=0.01) and steady.shortfall(5000) == ""
    slow = Offered([n / 446 for n in range(1000)], 2.3, 0)
    assert "446/s of the 5,000/s" in slow.shortfall(5000)
    lost = Offered([0.0, TICK_S], 1.0, 1)
    assert "never acknowledged" in lost.shortfall(1)
