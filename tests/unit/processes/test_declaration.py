"""Process managers as pure functions: actions, deterministic ids, deadlines as data."""

from __future__ import annotations

import pytest

from streams.contexts.orders import CancelOrder, OrderConfirmed, OrderPlaced
from streams.core.deadlines import ForgedDeadline, admit, due, emitted, reached
from streams.core.processes import (
    EMITTED,
    VOID,
    DeadlineReached,
    ProcessFailed,
    Schedule,
    Send,
    SentBy,
    advance,
    process_command_id,
    sent_by,
)
from streams.testing import given_process
from tests.processes.order_timeout import DEADLINE, TIMEOUT_MS, process

PLACED = OrderPlaced("c-1", "EUR")
CANCEL = Send("orders", "c-1", CancelOrder("not confirmed in time"), step="cancel")


def test_an_order_placed_schedules_its_deadline_from_the_event_time() -> None:
    given_process(process).when(PLACED, at_ms=1000).then().then_scheduled(**{DEADLINE: 1000 + TIMEOUT_MS})


def test_a_confirmed_order_cancels_the_deadline() -> None:
    scenario = given_process(process, PLACED, at_ms=0).when(OrderConfirmed(10)).then_scheduled()
    scenario.when_clock(10 * TIMEOUT_MS).then()


def test_the_deadline_fires_on_the_controlled_clock_only_once_due() -> None:
    scenario = given_process(process, PLACED, at_ms=1000)
    scenario.when_clock(1000 + TIMEOUT_MS - 1).then().then_scheduled(**{DEADLINE: 1000 + TIMEOUT_MS})
    scenario.when_clock(1000 + TIMEOUT_MS).then(CANCEL).then_scheduled()
    scenario.when_clock(1000 + 5 * TIMEOUT_MS).then(CANCEL)  # fired once
    assert scenario.state.status == "cancelling"


def test_when_deadline_names_a_pending_deadline() -> None:
    given_process(process, PLACED).when_deadline(DEADLINE).then(CANCEL)
    with pytest.raises(AssertionError, match="no pending deadline"):
        given_process(process).when_deadline(DEADLINE)


def test_command_ids_are_deterministic_per_process_instance_step_and_attempt() -> None:
    one = process_command_id("p", "c-1", "cancel", 0)
    assert one == process_command_id("p", "c-1", "cancel", 0) == "p:p:cancel:0:c-1"
    assert (
        len({one, process_command_id("p", "c-1", "cancel", 1), process_command_id("p", "c-2", "cancel", 0)})
        == 3
    )
    long = process_command_id("p", "x" * 300, "cancel")
    assert len(long) <= 255 and long.startswith("p:sha256:")


def test_a_deadline_cancelled_after_it_was_emitted_is_ignored_when_its_record_arrives() -> None:
    instance = advance(process, process.start("c-1"), PLACED, 0).instance
    [deadline] = due(instance, TIMEOUT_MS)
    instance = emitted(instance, [deadline])
    record = reached(process.name, instance, deadline)
    assert instance.deadlines[0].status == EMITTED
    instance = advance(process, instance, OrderConfirmed(1), 5).instance
    assert [d.status for d in instance.deadlines] == [VOID]
    admission = admit(process.name, instance, record)
    assert not admission.fires and admission.instance.deadlines == ()


def test_a_superseded_deadline_keeps_only_the_new_one_pending() -> None:
    instance = advance(process, process.start("c-1"), PLACED, 0).instance
    again = advance(process, instance, PLACED, 100).instance
    assert [(d.due_ms, d.status) for d in again.deadlines] == [(100 + TIMEOUT_MS, "pending")]
    assert again.deadlines[0].deadline_id != instance.deadlines[0].deadline_id


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            lambda r: DeadlineReached(r.process, r.correlation_id, r.name, "made-up", r.due_ms),
            "unknown_deadline",
        ),
        (
            lambda r: DeadlineReached(r.process, r.correlation_id, r.name, r.deadline_id, 1),
            "deadline_mismatch",
        ),
        (
            lambda r: DeadlineReached("other", r.correlation_id, r.name, r.deadline_id, r.due_ms),
            "deadline_misaddressed",
        ),
    ],
)
def test_a_forged_deadline_record_is_refused(change: object, reason: str) -> None:
    instance = advance(process, process.start("c-1"), PLACED, 0).instance
    [deadline] = due(instance, TIMEOUT_MS)
    instance = emitted(instance, [deadline])
    record = change(reached(process.name, instance, deadline))  # type: ignore[operator]
    with pytest.raises(ForgedDeadline) as caught:
        admit(process.name, instance, record)
    assert caught.value.reason == reason


def test_a_deadline_record_for_a_deadline_not_yet_due_is_refused() -> None:
    instance = advance(process, process.start("c-1"), PLACED, 0).instance
    record = reached(process.name, instance, instance.deadlines[0])  # pending: never emitted
    with pytest.raises(ForgedDeadline, match="deadline_not_emitted"):
        admit(process.name, instance, record)


def test_a_failing_decide_is_a_process_failure() -> None:
    def boom(_state: object, _event: object) -> list[Schedule]:
        raise ValueError("no")

    broken = type(process)(
        process.name, process.subscriptions, process.state_type, process.initial_state, process.evolve, boom
    )
    with pytest.raises(ProcessFailed, match="process_failed"):
        advance(broken, broken.start("c-1"), PLACED)


def test_schedule_needs_exactly_one_time() -> None:
    with pytest.raises(ValueError):
        Schedule("x")
    with pytest.raises(ValueError):
        Schedule("x", at_ms=1, after_ms=1)
    assert Schedule("x", at_ms=5).due_ms(100) == 5 and Schedule("x", after_ms=5).due_ms(100) == 105


def test_a_process_command_id_says_which_instance_and_step_sent_it() -> None:
    command_id = process_command_id("p", "round:7", "reserve", 2)
    assert sent_by("p", command_id) == SentBy("round:7", "reserve", 2)
    assert sent_by("q", command_id) is None  # another manager's
    assert sent_by("p", "p:p:no-attempt") is None
    assert sent_by("p", process_command_id("p", "x" * 300, "cancel")) is None  # hashed


def test_a_step_may_not_hide_a_separator() -> None:
    with pytest.raises(ValueError):
        Send("orders", "o-1", CancelOrder(), step="a:b")


def test_the_outcome_of_a_command_reaches_decide_and_marks_it_sent() -> None:
    scenario = given_process(process, PLACED).when_deadline(DEADLINE).then(CANCEL)
    scenario.when_outcome("cancel", "rejected", "order_already_shipped")
    assert scenario.state.cancel_outcome == "order_already_shipped"
    assert [c.status for c in scenario.instance.sent] == ["rejected"]
    with pytest.raises(AssertionError, match="no command sent"):
        scenario.when_outcome("refund")
