"""The command line's arguments, checked before anything is sent, with the HTTP API's owners and
reasons: contexts by name (the registry), command data against the command's latest Avro schema
(`streams.wire.validation`, as `POST /<ctx>/commands/<Type>`), identifiers
(`streams.wire.identifiers`) and topics by their logical name (`streams.wire.topics`)."""

from __future__ import annotations

import json
from typing import Any

import orjson

from streams.cli.errors import CliError
from streams.config import Settings
from streams.core.decider import BoundedContext
from streams.web.envelope import data_problem
from streams.wire.identifiers import InvalidIdentifier, check_identifier
from streams.wire.schemas import catalog_for, from_record
from streams.wire.topics import ContextTopics, logical_topic
from streams.wire.validation import LONG_RANGE, JsonInvalid, compile_validator


def context_named(name: str) -> BoundedContext[Any]:
    """The installed context called `name` (CliError naming the known ones)."""
    from streams.contexts.registry import contexts

    known = contexts()
    if name not in known:
        raise CliError(f"unknown context {name!r}; known: {', '.join(known)}", "unknown_context")
    return known[name]


def identifier(field: str, value: str, *, required: bool = True) -> str:
    """`value` when it passes the identifier policy (CliError `invalid_identifier` otherwise)."""
    try:
        check_identifier(field, value, required=required)
    except InvalidIdentifier as exc:
        raise CliError(str(exc), exc.reason) from None
    return value


def checked_version(value: int | None) -> int | None:
    """`--expected-version` within the range the HTTP API accepts."""
    if value is not None and not 0 <= value <= LONG_RANGE[1]:
        raise CliError("expected_version must be an integer from 0", "invalid_envelope")
    return value


def command_from_json(context: BoundedContext[Any], command_type: str, data: str) -> Any:
    """The command `command_type` of `context` built from the JSON text `data`, checked exactly as
    the HTTP API checks a request's `data` (no coercion: `1` is not a string)."""
    cls = context.command_names.get(command_type)
    if cls is None:
        known = ", ".join(context.command_names)
        raise CliError(f"unknown command type {command_type!r}; known: {known}", "unknown_command_type")
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CliError(f"--data is not valid JSON: {exc}", "invalid_json") from None
    if not isinstance(payload, dict):
        raise CliError("data must be a JSON object", "invalid_envelope")
    schema = json.loads(catalog_for(context).latest(command_type).text)
    try:
        compile_validator(schema)(payload)
    except JsonInvalid as exc:
        problem = data_problem(exc)
        raise CliError(str(problem), problem.reason) from None
    return from_record(cls, payload)


def view_named(context: BoundedContext[Any], view: str) -> str:
    """`view` when `context` declares it (CliError naming the views otherwise)."""
    names = [v.name for v in context.views]
    if view not in names:
        known = ", ".join(names) or "none"
        raise CliError(f"{context.name} has no view {view!r}; views: {known}", "unknown_view")
    return view


def topic_named(settings: Settings, name: str) -> tuple[BoundedContext[Any], str]:
    """The context and the deployment's topic for `name`, given as `<ctx>.<topic>` (the logical
    name, e.g. `orders.events`) or with the topic prefix. The topic need not exist yet."""
    logical = logical_topic(name, settings.topic_prefix)
    if logical is None:
        raise CliError(
            f"{name!r} is not a topic name like orders.events (<context>.<topic>)", "invalid_topic"
        )
    context = context_named(logical.context)
    return context, ContextTopics(context.name, settings.topic_prefix).named(logical.suffix)


def existing_topic(settings: Settings, topic: str) -> str:
    """`topic` when the cluster has it (CliError `unknown_topic` otherwise). Lists every topic
    rather than asking for this one, which a broker may answer by creating it."""
    from streams.kafka.clients import admin

    found = admin(settings).list_topics(timeout=10).topics
    if topic not in found:
        raise CliError(f"no topic {topic} (topic prefix {settings.topic_prefix!r})", "unknown_topic")
    return topic
