"""A test-only context (registered with STREAMS_CONTEXT_MODULES) whose aggregate keeps personal
data in its state, and whose views forget a member in both ways a view may.

A membership (aggregate id) belongs to a member (`member_id`, the data subject). The state keeps
the member's e-mail because `decide` needs it: `ChangeEmail` to the address the membership has
already is rejected (`email_unchanged`). Once the member is forgotten the state reads the
replacement, so the same address is accepted again (a new key is made for the returning member).
Views: `member-cards` deletes a forgotten member's documents, `member-contacts` keeps them with
the replacements. Schemas in `members_schemas/` (`streams schemas generate` output).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from msgspec import Struct

from streams.core.decider import BoundedContext, Message, Rejected
from streams.core.records import Personal
from streams.core.views import EventMeta, Forgetting, State, View

ERASED = "[erased]"
Name = Annotated[str | None, Personal(subject="member_id")]
Email = Annotated[str | None, Personal(subject="member_id", erased=ERASED)]


class Join(Struct, frozen=True):
    """Open a membership for a member, with their name and e-mail."""

    member_id: str
    name: Name = None
    email: Email = None


class ChangeEmail(Struct, frozen=True):
    """Give the membership another e-mail address."""

    member_id: str
    email: Email = None


class Joined(Join, frozen=True):
    """A membership was opened (the fields of `Join`)."""


class EmailChanged(ChangeEmail, frozen=True):
    """The membership's e-mail changed (the fields of `ChangeEmail`)."""


class Membership(Struct, frozen=True):
    """A membership: its member and their contact, personal data sealed in the state rows."""

    status: str = "none"
    member_id: str = ""
    name: Name = None
    email: Email = None


def decide(state: Membership, command: Message) -> list[Message]:
    """Join once; change the e-mail to another address."""
    match command:
        case Join(member_id=member_id, name=name, email=email):
            if state.status != "none":
                raise Rejected("already_joined")
            return [Joined(member_id, name, email)]
        case ChangeEmail(member_id=member_id, email=email):
            if state.status == "none":
                raise Rejected("not_a_member")
            if email == state.email:
                raise Rejected("email_unchanged", "the membership has this address already")
            return [EmailChanged(member_id, email)]
    raise Rejected("unknown_command", type(command).__name__)


def evolve(state: Membership, event: Message) -> Membership:
    """Fold one event into the membership."""
    match event:
        case Joined(member_id=member_id, name=name, email=email):
            return Membership("active", member_id, name, email)
        case EmailChanged(email=email):
            return Membership(state.status, state.member_id, state.name, email)
    return state


def card(state: State | None, event: Any, meta: EventMeta) -> State:
    """The member's card: who and how to reach them."""
    doc = dict(state or {})
    if isinstance(event, Joined):
        doc.update(member_id=event.member_id, name=event.name, email=event.email)
    elif isinstance(event, EmailChanged):
        doc.update(email=event.email)
    return doc


PERSONAL = {"name": None, "email": None}
context = BoundedContext(
    name="members",
    aggregate_type="Membership",
    commands=(Join, ChangeEmail),
    events=(Joined, EmailChanged),
    state_type=Membership,
    initial_state=Membership(),
    decide=decide,
    evolve=evolve,
    views=(
        View("member-cards", card, forgetting=Forgetting("member_id", PERSONAL, delete=True)),
        View("member-contacts", card, forgetting=Forgetting("member_id", PERSONAL)),
    ),
    schema_dir=Path(__file__).parent / "members_schemas",
)
