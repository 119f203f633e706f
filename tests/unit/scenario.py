"""Given/when/then for deciders: `given(ctx, *events).when(command).then(*events)`."""

from __future__ import annotations

from typing import Any

import pytest

from streams.core.decider import BoundedContext, Rejected


class Scenario:
    """A decider exercised the way its rules are spoken: given history, when a command."""

    def __init__(self, context: BoundedContext[Any], history: tuple[Any, ...]) -> None:
        self.context = context
        self.state = context.fold(history)
        self.command: Any = None

    def when(self, command: Any) -> Scenario:
        self.command = command
        return self

    def then(self, *expected: Any) -> Any:
        events = list(self.context.decide(self.state, self.command))
        assert events == list(expected)
        return self.context.fold(events, self.state)

    def then_rejected(self, reason: str) -> Rejected:
        with pytest.raises(Rejected) as info:
            self.context.decide(self.state, self.command)
        assert info.value.reason == reason, info.value
        return info.value


def given(context: BoundedContext[Any], *history: Any) -> Scenario:
    return Scenario(context, history)
