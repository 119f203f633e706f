"""Personal fields of the write side's state: sealed in the MessagePack rows of RocksDB and the
changelog, opened on read, the replacement once the subject is forgotten."""

from __future__ import annotations

from typing import Annotated

import msgspec
import pytest
from msgspec import Struct

from streams.contexts.orders import OrderState
from streams.contexts.orders import context as orders
from streams.core.commands import Aggregate
from streams.core.records import Personal
from streams.privacy.errors import NoMasterKey
from streams.privacy.keys import Keyring, MemoryKeyStore
from streams.privacy.master import LocalMasterKey
from streams.wire.codec import AvroCodec, MalformedField, TamperedField
from streams.wire.personal import PersonalSchemaError
from streams.wire.schemas import catalog_for
from streams.wire.state import ROWS, StateFormat
from streams.wire.state_sealing import ERASED_CELL
from tests.integration.privacy.members import ERASED, Membership

NAME, EMAIL = "Ada Lovelace", "ada@example.org"
STATE = Membership("active", "member-A", NAME, EMAIL)


class Contact(Struct, frozen=True):
    """A record nested in a state, with a personal field of its own subject."""

    person_id: str
    phone: Annotated[str | None, Personal(subject="person_id")] = None


class Household(Struct, frozen=True):
    """A state whose personal fields are in nested records only."""

    contacts: tuple[Contact, ...] = ()
    main: Contact = Contact("")


@pytest.fixture
def keyring() -> Keyring:
    return Keyring(MemoryKeyStore(), LocalMasterKey.parse(LocalMasterKey.generate()))


@pytest.fixture
def codec(keyring: Keyring) -> AvroCodec:
    return AvroCodec.offline(catalog_for(orders), keyring)


def _row(raw: bytes) -> list[object]:
    _version, row = msgspec.msgpack.decode(raw[1:])
    return list(row)


def test_personal_state_fields_are_sealed_in_the_row_and_opened_on_read(
    codec: AvroCodec, keyring: Keyring
) -> None:
    states = StateFormat(Membership, codec)
    raw = states.encode(Aggregate(3, STATE))
    assert raw[:1] == ROWS and states.sealed
    assert NAME.encode() not in raw and EMAIL.encode() not in raw
    status, member, name, email = _row(raw)
    assert (status, member) == ("active", "member-A")
    assert isinstance(name, bytes) and isinstance(email, bytes)
    assert states.decode(raw) == Aggregate(3, STATE)
    assert keyring.store.subjects() == ["member-A"]  # the same key per subject as the events


def test_a_forgotten_subject_reads_as_the_replacement_and_writing_it_again_makes_no_key(
    codec: AvroCodec, keyring: Keyring
) -> None:
    states = StateFormat(Membership, codec)
    raw = states.encode(Aggregate(3, STATE))
    evictions = states.forgets()
    assert keyring.forget("member-A")
    assert states.forgets() == evictions + 1  # what tells the write side's cache to read again
    restored = states.decode(raw)
    assert restored == Aggregate(3, Membership("active", "member-A", None, ERASED))
    again = states.encode(restored)
    assert _row(again)[2:] == [None, ERASED_CELL]
    assert states.decode(again) == restored
    assert keyring.store.subjects() == []  # the replacement is not sealed: no key comes back


def test_a_tampered_row_is_a_clear_error(codec: AvroCodec) -> None:
    states = StateFormat(Membership, codec)
    raw = bytearray(states.encode(Aggregate(1, STATE)))
    raw[-1] ^= 0x01  # the last byte of the last cell: the e-mail's GCM tag
    with pytest.raises(TamperedField, match=r"state Membership\.email of subject 'member-A'") as caught:
        states.decode(bytes(raw))
    assert caught.value.reason == "tampered_ciphertext" and "streams rebuild" in str(caught.value)


def test_a_cell_moved_to_another_field_is_tampered_and_to_another_subject_reads_erased(
    codec: AvroCodec,
) -> None:
    states = StateFormat(Membership, codec)
    status, _member, name, email = _row(states.encode(Aggregate(1, STATE)))
    states.encode(Aggregate(1, Membership("active", "member-B", "Bob", "bob@example.org")))
    with pytest.raises(TamperedField):
        states.decode(ROWS + msgspec.msgpack.encode([1, [status, "member-A", email, email]]))
    # member-B's key is not the one the cell names: without it nothing is opened
    moved = states.decode(ROWS + msgspec.msgpack.encode([1, [status, "member-B", name, email]]))
    assert moved.state == Membership("active", "member-B", None, ERASED)


def test_plaintext_where_a_sealed_cell_belongs_is_refused(codec: AvroCodec) -> None:
    states = StateFormat(Membership, codec)
    row = ROWS + msgspec.msgpack.encode([1, ["active", "member-A", NAME, None]])
    with pytest.raises(MalformedField, match="streams rebuild") as caught:
        states.decode(row)
    assert caught.value.reason == "malformed_ciphertext"


def test_without_a_master_key_a_personal_value_is_refused_and_none_is_needed_otherwise() -> None:
    keyless = AvroCodec(catalog_for(orders), None)
    states = StateFormat(Membership, keyless)
    with pytest.raises(NoMasterKey):
        states.encode(Aggregate(1, STATE))
    empty = Aggregate(1, Membership("active", "member-A"))
    assert states.decode(states.encode(empty)) == empty
    assert states.forgets() == 0
    plain = StateFormat(OrderState, keyless)  # no personal field: the rows of before, no keys
    assert not plain.sealed and plain.forgets() == 0
    order = Aggregate(2, OrderState("placed", "cust-1", "EUR"))
    assert plain.decode(plain.encode(order)) == order


def test_a_row_written_before_a_personal_field_was_added_reads_its_default(codec: AvroCodec) -> None:
    states = StateFormat(Membership, codec)
    short = ROWS + msgspec.msgpack.encode([1, ["active", "member-A"]])
    assert states.decode(short) == Aggregate(1, Membership("active", "member-A"))
    sealed = _row(states.encode(Aggregate(1, STATE)))[:3]  # the name sealed, no e-mail cell yet
    assert states.decode(ROWS + msgspec.msgpack.encode([1, sealed])).state.name == NAME


def test_personal_fields_of_nested_records_are_sealed_under_their_own_subject(
    codec: AvroCodec, keyring: Keyring
) -> None:
    states = StateFormat(Household, codec)
    state = Household((Contact("p-1", "+33 1 23"), Contact("p-2", "+44 20 7")), Contact("p-1", "+33 1 23"))
    raw = states.encode(Aggregate(1, state))
    assert states.sealed and b"+33" not in raw and b"+44" not in raw
    assert states.decode(raw) == Aggregate(1, state)
    keyring.forget("p-2")
    assert states.decode(raw).state.contacts[1] == Contact("p-2", None)
    assert states.decode(raw).state.main == Contact("p-1", "+33 1 23")


class NoSubject(Struct, frozen=True):
    email: Annotated[str | None, Personal(subject="owner")] = None


class PersonalSubject(Struct, frozen=True):
    owner: Annotated[str | None, Personal(subject="owner")] = None
    email: Annotated[str | None, Personal(subject="owner")] = None


class PersonalRecord(Struct, frozen=True):
    owner: str = ""
    contact: Annotated[Contact | None, Personal(subject="owner")] = None


class OptionalContact(Struct, frozen=True):
    contact: Contact | None = None


@pytest.mark.parametrize("cls", [NoSubject, PersonalSubject, PersonalRecord, OptionalContact])
def test_a_personal_state_field_that_cannot_be_sealed_is_refused(codec: AvroCodec, cls: type) -> None:
    with pytest.raises(PersonalSchemaError, match=cls.__name__):
        StateFormat(cls, codec)
