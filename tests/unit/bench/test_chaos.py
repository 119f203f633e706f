"""The chaos suite's pure parts: where a transactional id is coordinated, the load's commands,
the checker's verdicts and a scenario's figures."""

from __future__ import annotations

from collections import Counter
from typing import cast

from bench.chaos.check import Event, judge
from bench.chaos.cluster import Cluster, java_string_hash, transaction_state_partition
from bench.chaos.fault import Fault
from bench.chaos.load import Probe, command_for
from bench.chaos.outages import first_result_after, outage_problems, stale_leader_problems, wait_for_leader
from bench.chaos.scenarios import outcome
from streams.contexts.orders import AddItem, PlaceOrder


def test_the_coordinator_partition_follows_kafkas_hash_of_the_transactional_id() -> None:
    assert java_string_hash("") == 0
    assert java_string_hash("a") == 97
    assert java_string_hash("hello") == 99162322  # "hello".hashCode() in Java
    assert java_string_hash("polygenelubricants") == -2147483648  # Integer.MIN_VALUE
    assert transaction_state_partition("polygenelubricants", 10) == 0  # Utils.abs masks the sign
    assert transaction_state_partition("hello", 10) == 99162322 % 10


def test_the_load_places_each_order_before_its_items() -> None:
    first = [command_for(n) for n in range(2000)]
    assert first[0] == ("chaos-0-0", first[0][1]) and isinstance(first[0][1], PlaceOrder)
    assert all(isinstance(c, PlaceOrder) for _, c in first[:100])
    assert all(isinstance(c, AddItem) for _, c in first[100:])
    assert command_for(2000)[0] == "chaos-1-0"


def _events(*triples: tuple[str, str, int]) -> list[Event]:
    return [Event(*t) for t in triples]


def test_a_clean_history_passes() -> None:
    verdict = judge(
        ["c1", "c2"], Counter({"c1": 1, "c2": 1}), _events(("c1", "a", 1), ("c2", "a", 2)),
        committed={(0, 0), (0, 1)}, uncommitted={(0, 0), (0, 1), (0, 2)}, seen={(0, 0)},
    )  # fmt: skip
    assert verdict.passed and verdict.aborted_records == 1


def test_the_checker_names_losses_duplicates_gaps_and_aborted_reads() -> None:
    verdict = judge(
        ["c1", "c2", "c3"], Counter({"c1": 2, "c2": 1}),
        _events(("c1", "a", 1), ("c1", "a", 2), ("c2", "b", 2)),
        committed={(0, 0)}, uncommitted={(0, 0), (0, 1)}, seen={(0, 1)},
    )  # fmt: skip
    text = "\n".join(verdict.problems)
    assert "without a result" in text and "more than one result" in text
    assert "without an event" in text and "appended twice" in text
    assert "not 1..n" in text and "aborted records seen" in text


def test_a_scenario_recovers_when_its_last_slow_probe_completes() -> None:
    probes = [Probe(100.5, 0.1), Probe(101.0, 12.0), Probe(101.5, 11.6), Probe(114.0, 0.1)]
    o = outcome("leader", [2], fault_at=100.0, healed_at=130.0, probes=probes)
    assert o.recovered_s == 13.1 and o.max_latency_s == 12.0 and o.healed_s == 30.0
    assert (o.slow_probes, o.timed_out_probes) == (2, 0)
    assert outcome("x", [1], 0.0, 1.0, [Probe(0.5, None)]).max_latency_s is None


def test_two_nodes_down_must_refuse_writes_with_an_error_and_resume() -> None:
    assert outage_problems(0, "Local: Message timed out", 0, 42.0) == []
    text = "\n".join(outage_problems(1, None, 2, None))
    assert "1 writes acknowledged" in text and "2 commands answered" in text
    assert "no command answered" in text
    assert outage_problems(0, None, 0, 1.0) == ["writes with two of three nodes down failed without an error"]


def test_a_stale_replica_must_not_lead_and_nothing_acknowledged_may_go() -> None:
    assert stale_leader_problems([-1, -1, 1], stale=2, acknowledged=100, read_back=100) == []
    text = "\n".join(stale_leader_problems([-1, 2], stale=2, acknowledged=100, read_back=60))
    assert "unclean election" in text and "40 of 100 acknowledged records lost" in text
    assert "nothing was tested" in stale_leader_problems([], stale=2, acknowledged=0, read_back=0)[0]


class Leaders:
    """A cluster whose metadata answers, in turn, an error, no leader, then node 2."""

    def __init__(self) -> None:
        self.answers: list[int | None] = [None, -1, 2]

    def leader(self, _topic: str, _partition: int) -> int:
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if answer is None:
            raise RuntimeError("Failed to get metadata: Local: Timed out")
        return answer


def test_the_stale_scenario_reads_back_once_its_leader_leads_again() -> None:
    assert wait_for_leader(cast(Cluster, Leaders()), "t", 2, timeout=30.0) is not None
    assert wait_for_leader(cast(Cluster, Leaders()), "t", 3, timeout=0.0) is None


def test_work_resumes_at_the_first_result_after_a_nodes_return() -> None:
    probes = [Probe(10.0, 1.0), Probe(11.0, 30.0), Probe(41.5, 0.2)]
    assert first_result_after(probes, 20.0) == 41.0
    assert first_result_after(probes, 50.0) is None


def test_a_scenarios_problems_and_details_reach_its_outcome() -> None:
    fault = Fault([1, 2], {"write_error": "timed out"}, ["1 writes acknowledged with two nodes down"])
    o = outcome("two-down", fault, 0.0, 10.0, [Probe(1.0, 0.1)])
    assert o.nodes == [1, 2] and o.details == {"write_error": "timed out"} and o.problems
    assert o.row()["problems"] == fault.problems


def test_the_docs_table_lists_what_a_scenario_observed() -> None:
    from bench.chaos.markdown import markdown

    row = outcome("two-down", Fault([1, 2], {"write_error": "timed out"}), 0.0, 1.0, []).row()
    check = {"accepted": 1, "results": 1, "events": 1, "aborted_records": 0, "problems": [], "passed": True}
    text = markdown({"outcomes": [row], "check": check})
    assert "- two brokers down: write error: timed out; problems: none" in text


def test_the_docs_table_gives_the_window_and_view_checks() -> None:
    from bench.chaos.markdown import markdown

    check = {"accepted": 1, "results": 1, "events": 1, "aborted_records": 0, "problems": [], "passed": True}
    window = {"aggregation": "telemetry", "readings": 22072, "windows": 480, "problems": []}
    text = markdown(
        {
            "outcomes": [],
            "check": check,
            "windows": [{**window, "dead_lettered": {"late_record": 3}}],
            "views": [],
        }
    )
    assert (
        "- Windows (telemetry): 22,072 readings sent to the raw topic, 480 windows in their replay; "
        "dead-lettered: 3 late_record; every window closed once and equal to the replay." in text
    )
    assert "- Views: every view's topic equals the fold of its events log." in text
    failed = markdown({"outcomes": [], "check": check, "views": ["view v: 2 documents differ"]})
    assert "- Views: view v: 2 documents differ." in failed and "Windows" not in failed
