"""Testing a bounded context without Kafka: given/when/then, and a conformance check.

Given/when/then reads like the rules::

    from streams.testing import given

    given(orders, OrderPlaced("c-1", "EUR")).when(ShipOrder("DHL")).then_rejected("order_not_confirmed")

and so does a process manager's (`given_process(pm, *events).when(event).then(Send(...))`,
`.when_clock(ms)` for deadlines, `.when_outcome(step, "rejected", reason)` for a command's result).

The conformance check is what every context must pass (like `eventsourcing.tests`): run
`assert_conformant(context, samples_dir)` in your test suite. `samples_dir/<Type>.v<N>.json`
holds sample records of every historical version of every command, event and state type, each
`{"record": <as a vN producer wrote it>, "latest": <what reading it must give>}`;
`scaffold_samples` writes missing ones (and, with `expect=True`, refreshes `latest`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from streams.core.commands import Aggregate, CommandEnvelope, handle_command
from streams.core.deadlines import admit, due, emitted, reached
from streams.core.decider import BoundedContext, Rejected
from streams.core.processes import (
    Command,
    CommandOutcome,
    Deadline,
    Instance,
    ProcessManager,
    Send,
    advance,
    process_command_id,
)
from streams.core.views import EventMeta, fold_view
from streams.core.windows import ClosedWindow, fold_windows
from streams.wire.codec import AvroCodec, DecodeError
from streams.wire.derive import agreement
from streams.wire.jsonable import json_bytes
from streams.wire.schemas import SchemaCatalog, SchemaVersion, catalog_for, to_record

# --- given / when / then ----------------------------------------------------------------------


class Scenario:
    """A decider exercised the way its rules are spoken: given history, when a command."""

    def __init__(self, context: BoundedContext[Any], history: tuple[Any, ...]) -> None:
        self.context = context
        self.state = context.fold(history)
        self.command: Any = None

    def when(self, command: Any) -> Scenario:
        """The command under test."""
        self.command = command
        return self

    def then(self, *expected: Any) -> Any:
        """Assert the command is accepted with exactly these events; returns the new state."""
        try:
            events = list(self.context.decide(self.state, self.command))
        except Rejected as rejection:
            raise AssertionError(f"rejected as {rejection.reason!r}: {rejection}") from None
        assert events == list(expected), f"expected {list(expected)}, got {events}"
        return self.context.fold(events, self.state)

    def then_rejected(self, reason: str) -> Rejected:
        """Assert the command is rejected with this reason; returns the rejection."""
        try:
            events = self.context.decide(self.state, self.command)
        except Rejected as rejection:
            assert rejection.reason == reason, (
                f"rejected as {rejection.reason!r}, not {reason!r}: {rejection}"
            )
            return rejection
        raise AssertionError(f"expected rejection {reason!r}, got events {list(events)}")


def given(context: BoundedContext[Any], *history: Any) -> Scenario:
    """A scenario whose state is the fold of `history`."""
    return Scenario(context, history)


class ProcessScenario:
    """A process manager exercised the way its rules are spoken: given events (of one instance),
    when an event, a deadline or a moment of the clock, then commands and deadlines."""

    def __init__(
        self, pm: ProcessManager[Any], correlation_id: str, history: tuple[Any, ...], at_ms: int
    ) -> None:
        self.pm = pm
        self.at_ms = at_ms
        self.instance: Instance[Any] = pm.start(correlation_id)
        for event in history:
            self.instance = advance(pm, self.instance, event, at_ms).instance
        self.sent: list[Command] = []

    def _feed(self, message: Any, at_ms: int) -> None:
        step = advance(self.pm, self.instance, message, at_ms)
        self.instance = step.instance
        self.sent.extend(step.commands)

    def when(self, event: Any, at_ms: int | None = None) -> ProcessScenario:
        """An input event (that occurred at `at_ms`; default: the time of `given`)."""
        self._feed(event, self.at_ms if at_ms is None else at_ms)
        return self

    def when_deadline(self, name: str) -> ProcessScenario:
        """The pending deadline `name` is reached (whatever the time)."""
        found = next((d for d in self.instance.pending() if d.name == name), None)
        assert found is not None, f"no pending deadline {name!r}: {self.scheduled()}"
        self._fire([found])
        return self

    def when_clock(self, now_ms: int) -> ProcessScenario:
        """The wall clock reads `now_ms`: every deadline due by then is reached, earliest first."""
        self._fire(due(self.instance, now_ms))
        return self

    def _fire(self, deadlines: list[Deadline]) -> None:
        self.instance = emitted(self.instance, deadlines)
        for deadline in deadlines:
            record = reached(self.pm.name, self.instance, deadline)
            admission = admit(self.pm.name, self.instance, record)
            self.instance = admission.instance
            if admission.fires:
                self._feed(record, deadline.due_ms)

    def when_outcome(
        self, step: str, status: str = "accepted", reason: str = "", attempt: int = 0
    ) -> ProcessScenario:
        """The target context answered the command the instance sent at `step` (`accepted`, or
        `rejected` with `reason`)."""
        command_id = process_command_id(self.pm.name, self.instance.correlation_id, step, attempt)
        sent = next((c for c in self.instance.sent if c.command_id == command_id), None)
        assert sent is not None, f"no command sent at step {step!r} (attempt {attempt})"
        outcome = CommandOutcome(
            self.instance.correlation_id,
            sent.context,
            command_id,
            sent.command_type,
            step,
            attempt,
            status,
            reason,
        )
        self._feed(outcome, self.at_ms)
        return self

    def then(self, *expected: Send) -> ProcessScenario:
        """Assert exactly these commands were sent since `given` (context, aggregate, command and
        deterministic id of each `Send`)."""
        want = [
            (s.context, s.aggregate_id, s.command,
             process_command_id(self.pm.name, self.instance.correlation_id, s.step, s.attempt))
            for s in expected
        ]  # fmt: skip
        got = [(c.context, c.aggregate_id, c.command, c.command_id) for c in self.sent]
        assert got == want, f"expected commands {want}, got {got}"
        return self

    def scheduled(self) -> dict[str, int]:
        """The pending deadlines: name -> due time (ms)."""
        return {d.name: d.due_ms for d in self.instance.pending()}

    def then_scheduled(self, **deadlines: int) -> ProcessScenario:
        """Assert exactly these deadlines are pending (name=due ms)."""
        assert self.scheduled() == deadlines, f"expected deadlines {deadlines}, got {self.scheduled()}"
        return self

    @property
    def state(self) -> Any:
        """The manager's state now."""
        return self.instance.state


def given_process(
    pm: ProcessManager[Any], *history: Any, correlation_id: str = "c-1", at_ms: int = 0
) -> ProcessScenario:
    """A process scenario whose instance has folded `history`, events that occurred at `at_ms`
    (the commands they sent are not counted)."""
    return ProcessScenario(pm, correlation_id, history, at_ms)


# --- samples of every schema version -----------------------------------------------------------


def governed(context: BoundedContext[Any]) -> list[str]:
    """The type names whose history is kept: commands, events, the state (snapshots) and the raw
    records of windowed aggregations."""
    records = tuple(w.record_type for w in context.windows)
    return [t.__name__ for t in (*context.commands, *context.events, context.state_type, *records)]


def sample_path(samples_dir: Path, sv: SchemaVersion) -> Path:
    """Where the samples of one schema version live."""
    return samples_dir / f"{sv.type_name}.v{sv.version}.json"


def to_record_deep(message: Any) -> dict[str, Any]:
    """A message as plain JSON-like data (nested records included)."""
    return json.loads(json.dumps(to_record(message), default=to_record_deep))


def latest_of(codec: AvroCodec, sv: SchemaVersion, record: dict[str, Any]) -> dict[str, Any]:
    """What the codec reads a vN record as (the one decode path), as a plain record."""
    decoded = codec.decode(codec.encode_record(sv.type_name, sv.version, record))
    return to_record_deep(decoded.message)


def placeholder(schema: Any) -> Any:
    """A value that fits an Avro schema (a start for a hand-written sample)."""
    if isinstance(schema, list):
        return placeholder(schema[0])
    if isinstance(schema, dict):
        kind = schema["type"]
        if kind == "record":
            return {f["name"]: f.get("default", placeholder(f["type"])) for f in schema["fields"]}
        if kind == "array":
            return [placeholder(schema["items"])]
        if kind == "map":
            return {"k": placeholder(schema["values"])}
        if kind == "enum":
            return schema["symbols"][0]
        return placeholder(kind)
    defaults = {"null": None, "string": "x", "long": 1, "int": 1, "boolean": False, "double": 1.0}
    return defaults.get(str(schema))


def scaffold_samples(context: BoundedContext[Any], samples_dir: Path, *, expect: bool = False) -> list[Path]:
    """Write a placeholder sample for every version that has none (edit it into a realistic
    record); with `expect`, rewrite every sample's `latest` from the code. Returns the files
    written."""
    catalog = catalog_for(context)
    codec = AvroCodec.offline(catalog)
    written = []
    for type_name in governed(context):
        for sv in catalog.versions(type_name):
            path = sample_path(samples_dir, sv)
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                record = placeholder(json.loads(sv.text))
                samples = [{"record": record, "latest": latest_of(codec, sv, record)}]
            elif expect:
                samples = json.loads(path.read_text())
                for sample in samples:
                    sample["latest"] = latest_of(codec, sv, sample["record"])
            else:
                continue
            path.write_text(json.dumps(samples, indent=2, sort_keys=True) + "\n")
            written.append(path)
    return written


# --- the conformance check ----------------------------------------------------------------------


def conformance(
    context: BoundedContext[Any], samples_dir: Path, catalog: SchemaCatalog | None = None
) -> list[str]:
    """Every failure of `context` against the rules every context must keep (empty: conformant).

    1. every stored sample of every schema version decodes (through Avro resolution and the
       upcasters) to its expected latest record, as an instance of the latest class;
    2. the decoded events fold (`evolve` is total over every version), and every view folds them;
    3. `decide` raises nothing but `Rejected` on the decoded commands;
    4. the state a command leaves equals the fold of the events it accepted, and every state
       survives the state codec's round trip (RocksDB and the changelog keep it encoded);
    5. every windowed aggregation folds the decoded raw record samples, closes each window into
       a command of the context that passes 3 and 4, and its join table folds the events;
    6. every class agrees with the latest version of its schema file (`streams.wire.derive`;
       classes whose types cannot be derived keep their hand-written schema unchecked).
    """
    catalog = catalog or catalog_for(context)
    codec = AvroCodec.offline(catalog)
    failures: list[str] = agreement(context, catalog)[0]
    events: list[Any] = []
    commands: list[Any] = []
    raw: dict[str, list[Any]] = {}
    raw_types = {w.record_type.__name__ for w in context.windows}
    for type_name in governed(context):
        for sv in catalog.versions(type_name):
            path = sample_path(samples_dir, sv)
            if not path.exists():
                failures.append(f"{path}: no sample for {type_name} v{sv.version}")
                continue
            for i, sample in enumerate(json.loads(path.read_text())):
                decoded = _decode_sample(codec, catalog, sv, sample, f"{path.name}[{i}]", failures)
                if decoded is None:
                    continue
                if type_name in context.event_names:
                    events.append(decoded)
                elif type_name in context.command_names:
                    commands.append(decoded)
                elif type_name in raw_types:
                    raw.setdefault(type_name, []).append(decoded)
    # one aggregate whose log holds every version of every event, in the context's event order
    order = {e.__name__: i for i, e in enumerate(context.events)}
    events.sort(key=lambda e: order[type(e).__name__])
    try:
        state = context.fold(events)
    except Exception as exc:
        failures.append(f"evolve fails on the decoded samples: {type(exc).__name__}: {exc}")
        state = context.initial_state
    metas = [
        EventMeta("agg-1", i + 1, type(e).__name__, "2026-01-01T00:00:00Z") for i, e in enumerate(events)
    ]
    for view in context.views:
        try:
            for document in fold_view(view, list(zip(events, metas, strict=True))).values():
                json_bytes(document.state)
        except Exception as exc:
            failures.append(f"view {view.name} fails on the decoded samples: {type(exc).__name__}: {exc}")
    for aggregation in context.windows:
        commands += _window_commands(
            context, aggregation, raw.get(aggregation.record_type.__name__, []), events, failures
        )
    for command in commands:
        for current in (Aggregate(0, context.initial_state), Aggregate(len(events), state)):
            failures += _check_command(context, codec, current, command)
    return failures


def _window_commands(
    context: BoundedContext[Any], aggregation: Any, records: list[Any], events: list[Any], failures: list[str]
) -> list[Any]:
    """The commands a windowed aggregation makes of the record samples (failures noted)."""
    name = aggregation.name
    try:
        for record in records:
            aggregation.check(record)
            aggregation.group_by(record)
        windows = fold_windows(aggregation, [("agg-1", r) for r in records])
        out = [
            aggregation.close(ClosedWindow("agg-1", group, start, start + aggregation.spec.size_ms, acc))
            for (_, group, start), acc in windows.items()
        ]
        for accumulator in windows.values():
            json_bytes(accumulator)
    except Exception as exc:
        failures.append(f"window {name} fails on the record samples: {type(exc).__name__}: {exc}")
        return []
    strangers = [type(c).__name__ for c in out if type(c) not in context.commands]
    if strangers:
        failures.append(f"window {name} closes into {strangers}, not commands of {context.name}")
        return []
    if aggregation.table is not None:
        row = None
        try:
            for event in events:
                row = aggregation.table.evolve(row, event)
                json_bytes(row)
        except Exception as exc:
            failures.append(
                f"join table {aggregation.table.name} fails on the samples: {type(exc).__name__}: {exc}"
            )
    return out


def assert_conformant(context: BoundedContext[Any], samples_dir: Path) -> None:
    """AssertionError listing every conformance failure of `context`."""
    failures = conformance(context, samples_dir)
    assert not failures, f"{context.name} is not conformant:\n" + "\n".join(failures)


def _decode_sample(
    codec: AvroCodec,
    catalog: SchemaCatalog,
    sv: SchemaVersion,
    sample: dict[str, Any],
    where: str,
    failures: list[str],
) -> Any:
    try:
        data = codec.encode_record(sv.type_name, sv.version, sample["record"])
    except Exception as exc:  # the stored record no longer matches its own schema file
        failures.append(f"{where}: does not encode with its schema: {exc}")
        return None
    try:
        decoded = codec.decode(data)
    except DecodeError as exc:
        failures.append(f"{where}: {exc.reason}: {exc}")
        return None
    if type(decoded.message) is not catalog.types[sv.type_name]:
        failures.append(f"{where}: decoded as {type(decoded.message).__name__}")
    if to_record_deep(decoded.message) != sample["latest"]:
        failures.append(f"{where}: reads as {to_record_deep(decoded.message)} != {sample['latest']}")
    return decoded.message


def _check_command(
    context: BoundedContext[Any], codec: AvroCodec, current: Aggregate[Any], command: Any
) -> list[str]:
    envelope = CommandEnvelope(command_id="conformance", aggregate_id="agg-1", command=command)
    try:
        outcome = handle_command(context, current, envelope)
    except Exception as exc:
        return [f"decide fails on {command}: {type(exc).__name__}: {exc}"]
    failures = []
    events = [event for _, event in outcome.events]
    if outcome.aggregate.state != context.fold(events, current.state):
        failures.append(f"{command}: the state differs from the fold of its events")
    try:
        restored = codec.decode(codec.encode(outcome.aggregate.state)).message
    except Exception as exc:
        failures.append(f"{command}: the state does not encode: {type(exc).__name__}: {exc}")
    else:
        if restored != outcome.aggregate.state:
            failures.append(f"{command}: the state changes through its codec: {restored}")
    return failures
