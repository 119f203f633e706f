"""Deadlines held after an assignment until the stage has read its inputs to their ends (no Kafka):
the gate itself, and the intake's batch that re-keys an old input while catching up."""

from __future__ import annotations

from streams.contexts.orders import OrderConfirmed, OrderPlaced
from streams.processes.catchup import CatchUp
from streams.wire.topics import partition_for
from tests.processes.order_timeout import TIMEOUT_MS
from tests.unit.processes.test_intake import PARTITIONS, T0, TOPICS, Harness

EVENTS = "orders.events"


def test_a_partition_is_held_until_every_input_of_it_reached_its_end() -> None:
    gate = CatchUp()
    gate.expect(EVENTS, 1, 10)
    gate.expect(TOPICS.timers, 1, 3)
    gate.expect(EVENTS, 2, 5)
    assert gate.active and gate.ready(range(4)) == [0, 3]
    assert gate.reached({(EVENTS, 1): 10, (EVENTS, 2): 4}) == []  # 1 still waits for its timers
    assert gate.reached({(TOPICS.timers, 1): 3}) == [1]
    assert gate.ready(range(4)) == [0, 1, 3]
    gate.forget([2])  # revoked
    assert not gate.active and gate.ready(range(4)) == [0, 1, 2, 3]


def test_a_later_end_raises_the_wait_never_lowers_it() -> None:
    gate = CatchUp()
    gate.expect(TOPICS.inputs, 0, 7)
    gate.expect(TOPICS.inputs, 0, 4)
    assert gate.reached({(TOPICS.inputs, 0): 5}) == [] and gate.held() == {0}
    assert gate.reached({(TOPICS.inputs, 0): 7}) == [0]


def test_a_due_deadline_waits_for_the_cancel_still_unread_at_restart() -> None:
    """The restart bug: the stage's first turn must not emit a deadline the unread input cancels."""
    run = Harness()
    run.run([run.event("o-h", OrderPlaced("c", "EUR"))], T0)
    home = partition_for(b"o-h", PARTITIONS)
    gate = CatchUp()  # restarted: the confirm was written before, at offset 41, still unread
    gate.expect(EVENTS, home, 42)
    due = T0 + 2 * TIMEOUT_MS
    first = run.intake.decide([], run.table.lookup, run.table.scan, gate.ready(range(PARTITIONS)), due)
    assert first.outcomes["deadline_emitted"] == 0  # held: without the gate it was emitted here
    confirm = run.event("o-h", OrderConfirmed(5))
    gate.reached({(EVENTS, home): 42})
    read = run.run([confirm], due)
    assert read.outcomes["handled"] == 1 and read.outcomes["deadline_emitted"] == 0
    assert not run.run([], due + TIMEOUT_MS).records  # cancelled: never emitted


def test_while_catching_up_a_partition_receiving_a_rekeyed_input_emits_no_deadline() -> None:
    run = Harness()
    run.run([run.event("o-r", OrderPlaced("c", "EUR"))], T0)
    home = partition_for(b"o-r", PARTITIONS)
    confirm = run.event("o-r", OrderConfirmed(5), partition=(home + 1) % PARTITIONS)  # re-keyed
    due = T0 + 2 * TIMEOUT_MS
    owned = range(PARTITIONS)
    batch = run.intake.decide([confirm], run.table.lookup, run.table.scan, owned, due, catching_up=True)
    assert batch.written_to(TOPICS.inputs) == {home} and batch.outcomes["deadline_emitted"] == 0
    run.table.apply(batch.writes)
    [moved] = run.read_back(batch, TOPICS.inputs)
    handled = run.run([moved], due)
    assert handled.outcomes["handled"] == 1 and handled.outcomes["deadline_emitted"] == 0
    live = Harness()  # not catching up: the deadline is not held behind re-keyed traffic
    live.run([live.event("o-r", OrderPlaced("c", "EUR"))], T0)
    batch = live.intake.decide([confirm], live.table.lookup, live.table.scan, owned, due)
    assert batch.outcomes["deadline_emitted"] == 1
