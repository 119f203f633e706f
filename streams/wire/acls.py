"""What each principal of a deployment may do on a secured cluster, derived from the names in
`streams.wire.topics` (the one place of topic, group and transactional-id names).

A worker's grants cover its own contexts (and the process managers among them) by name prefix:
every topic `<prefix><ctx>.…`, every group and transactional id `<app id>.<prefix><ctx>.…`, so a
new view or window stage needs no new ACL, and a worker for `orders` can neither read nor write
`wallet.*`. A device may only produce to the raw inputs of the contexts' windowed aggregations.
Applying them is `streams.kafka.acls`'s job; these are plain records."""

from __future__ import annotations

from dataclasses import dataclass

from streams.wire.topics import ContextTopics, GroupNames, privacy_topic, secret_topic

READER_GROUP_PREFIX = "streams-reader-"
"""The throw-away groups of `streams.kafka.clients.reader` (a random suffix each)."""

TOPIC_OWNER = ("Read", "Write", "Create", "Describe", "DescribeConfigs")
"""What a worker does with its own topics: declares them (create, check their settings),
reads and writes them."""
GROUP_MEMBER = ("Read", "Describe")
TRANSACTIONS = ("Write", "Describe")
PRODUCE_ONLY = ("Write", "Describe")


@dataclass(frozen=True)
class Grant:
    """Allow `operations` on the resources of `kind` (`topic`, `group`, `transactional_id`)
    named `name`, or whose name starts with it when `prefixed`."""

    kind: str
    name: str
    prefixed: bool
    operations: tuple[str, ...]


@dataclass(frozen=True)
class Deployment:
    """The names a deployment's grants derive from."""

    app_id: str
    prefix: str
    contexts: tuple[str, ...]
    """The contexts a worker principal runs."""
    processes: tuple[str, ...] = ()
    """The process managers among them (their own topics and groups)."""
    raw_inputs: tuple[tuple[str, str], ...] = ()
    """(context, windowed aggregation name): the raw topics devices produce to."""


def worker_grants(deployment: Deployment) -> list[Grant]:
    """A worker's grants: its contexts' and process managers' topics, groups and transactional
    ids by prefix; the deployment's secret and privacy topics; its readers' throw-away groups;
    and Faust's own group (the app id) and leader topic (`<app id>-…`)."""
    app, prefix = deployment.app_id, deployment.prefix
    grants: list[Grant] = []
    for owner in (*deployment.contexts, *deployment.processes):
        # a process manager's own topics (`ProcessTopics`) are named `<prefix><pm>.…` as well
        groups = GroupNames(app, prefix, owner).every
        grants += [
            Grant("topic", ContextTopics(owner, prefix).every, True, TOPIC_OWNER),
            Grant("group", groups, True, GROUP_MEMBER),
            Grant("transactional_id", groups, True, TRANSACTIONS),
        ]
    grants += [
        Grant("topic", secret_topic(prefix, app), False, TOPIC_OWNER),
        Grant("topic", privacy_topic(prefix), False, TOPIC_OWNER),
        Grant("group", READER_GROUP_PREFIX, True, GROUP_MEMBER),
        Grant("group", app, False, GROUP_MEMBER),
        Grant("topic", f"{app}-", True, TOPIC_OWNER),
    ]
    return grants


def device_grants(deployment: Deployment) -> list[Grant]:
    """A device's grants: produce to the raw inputs of the windowed aggregations, nothing else
    (no read, no group, no transactions)."""
    return [
        Grant("topic", ContextTopics(context, deployment.prefix).window_input(name), False, PRODUCE_ONLY)
        for context, name in deployment.raw_inputs
    ]
