"""Which partitions of a process stage may emit their due deadlines: no Kafka clients.

After an assignment (a start, a restart, a rebalance) the stage's inputs may still hold records
written before the stage went away: a `BetCancelled`, a `RoundVoided`, a `FundsReserved` that
cancels or supersedes a deadline now due. Firing that deadline in the first loop turn, before those
records are read, would act on a state the log has already moved past. So on assignment the stage
records each input partition's end (the last stable offset: its consumer reads `read_committed`),
and a partition's due deadlines are **held** until the stage's positions on every input topic of
that partition have reached those ends; then they fire as usual (late, never wrong).

An input event of partition `q` whose correlation id belongs to partition `p` is re-keyed to
`<process>.process-inputs` `p` and handled when read back from there. While any partition is still
catching up, such a re-keyed record raises the end `p` must reach on `process-inputs` to after it
(`expect`), and the batch that re-keys into `p` emits none of `p`'s deadlines (the intake's
`catching_up`): an old cancelling event read from another partition is honoured as well.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

Position = tuple[str, int]
"""(topic, partition)."""


class CatchUp:
    """The input ends each held partition must reach before its deadlines may fire."""

    def __init__(self) -> None:
        self.ends: dict[Position, int] = {}
        """(topic, partition) -> the offset the stage's position must reach; reached ones are dropped."""

    @property
    def active(self) -> bool:
        """Some partition is still reading what was written before its assignment."""
        return bool(self.ends)

    def expect(self, topic: str, partition: int, end: int) -> None:
        """Hold `partition` until the stage's position on `topic` reaches `end`."""
        key = (topic, partition)
        self.ends[key] = max(self.ends.get(key, 0), end)

    def reached(self, positions: Mapping[Position, int]) -> list[int]:
        """Note the stage's positions (next offsets to read); the partitions this released."""
        before = self.held()
        for key, position in positions.items():
            end = self.ends.get(key)
            if end is not None and position >= end:
                del self.ends[key]
        return sorted(before - self.held())

    def forget(self, partitions: Iterable[int]) -> None:
        """The partitions were revoked: nothing of them is held any more."""
        gone = set(partitions)
        for key in [k for k in self.ends if k[1] in gone]:
            del self.ends[key]

    def held(self) -> set[int]:
        """The partitions whose due deadlines must wait."""
        return {partition for _, partition in self.ends}

    def ready(self, owned: Iterable[int]) -> list[int]:
        """The `owned` partitions whose due deadlines may fire now."""
        held = self.held()
        return [p for p in owned if p not in held]
