"""Apply a deployment's grants (`streams.wire.acls`) to a cluster as Kafka ACLs, through the admin
client of `streams.kafka.clients` (a super user's credentials: the local stack's `admin`)."""

from __future__ import annotations

from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
)

from streams.config import Settings
from streams.kafka import clients
from streams.wire.acls import Grant

_KINDS = {
    "topic": ResourceType.TOPIC,
    "group": ResourceType.GROUP,
    "transactional_id": ResourceType.TRANSACTIONAL_ID,
}
_OPERATIONS = {
    "Read": AclOperation.READ,
    "Write": AclOperation.WRITE,
    "Create": AclOperation.CREATE,
    "Describe": AclOperation.DESCRIBE,
    "DescribeConfigs": AclOperation.DESCRIBE_CONFIGS,
}


def bindings(principal: str, grants: list[Grant]) -> list[AclBinding]:
    """One ALLOW binding per grant and operation, for `principal` (`User:<name>`) from any host."""
    return [
        AclBinding(
            _KINDS[grant.kind],
            grant.name,
            ResourcePatternType.PREFIXED if grant.prefixed else ResourcePatternType.LITERAL,
            principal,
            "*",
            _OPERATIONS[operation],
            AclPermissionType.ALLOW,
        )
        for grant in grants
        for operation in grant.operations
    ]


def apply(settings: Settings, acls: list[AclBinding], timeout: float = 30.0) -> int:
    """Create `acls` (creating an existing ACL again is a no-op); the number created. Raises the
    first failure (e.g. `CLUSTER_AUTHORIZATION_FAILED` for a principal that is not a super user)."""
    if not acls:
        return 0
    admin = clients.admin(settings)  # kept until the futures are done: its end would fail them
    futures = admin.create_acls(acls, request_timeout=timeout)
    for future in futures.values():
        future.result(timeout=timeout)
    return len(futures)
