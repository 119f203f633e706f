"""Personal fields declared in a schema: sealed on write, opened on read, the replacement after
shredding, and clear DLQ reasons for bytes that are not what they claim."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec import Struct

from streams.core.records import Personal
from streams.privacy.errors import NoMasterKey
from streams.privacy.keys import Keyring, MemoryKeyStore
from streams.privacy.master import LocalMasterKey
from streams.wire.codec import AvroCodec, MalformedField, TamperedField
from streams.wire.derive import derive_schema
from streams.wire.personal import PersonalSchemaError, personal_plan
from streams.wire.schemas import SchemaCatalog


class Signup(Struct, frozen=True):
    """A person signed up."""

    customer_id: str
    name: Annotated[str | None, Personal(subject="customer_id")] = None
    email: Annotated[str, Personal(subject="customer_id", erased="[erased]")] = ""
    plan: str = "free"


class Plain(Struct, frozen=True):
    """Nothing personal."""

    sku: str
    quantity: int


def _catalog(tmp_path: Path) -> SchemaCatalog:
    for cls in (Signup, Plain):
        (tmp_path / f"{cls.__name__}.v1.avsc").write_text(json.dumps(derive_schema(cls, "shop")))
    return SchemaCatalog([tmp_path], (Signup, Plain))


@pytest.fixture
def keyring() -> Keyring:
    return Keyring(MemoryKeyStore(), LocalMasterKey.parse(LocalMasterKey.generate()))


@pytest.fixture
def codec(tmp_path: Path, keyring: Keyring) -> AvroCodec:
    return AvroCodec.offline(_catalog(tmp_path), keyring)


def test_the_derived_schema_declares_personal_fields_as_sealed_bytes() -> None:
    fields = {f["name"]: f for f in derive_schema(Signup, "shop")["fields"]}
    assert fields["name"] == {
        "name": "name", "type": ["null", "bytes"], "default": None, "streams.pii": True,
        "streams.subject": "customer_id", "confluent:tags": ["PII"],
    }  # fmt: skip
    assert fields["email"]["type"] == "bytes" and fields["email"]["streams.erased"] == "[erased]"
    assert fields["plan"] == {"name": "plan", "type": "string", "default": "free"}


def test_personal_fields_round_trip_and_leave_no_plaintext_on_the_wire(codec: AvroCodec) -> None:
    message = Signup("c-1", "Ada Lovelace", "ada@example.org", "pro")
    data = codec.encode(message)
    assert b"Ada" not in data and b"example.org" not in data and b"pro" in data
    assert codec.decode(data).message == message
    assert codec.decode(codec.encode(Signup("c-1", None, "x", "p"))).message == Signup("c-1", None, "x", "p")


def test_a_forgotten_subject_reads_as_the_declared_replacement(codec: AvroCodec, keyring: Keyring) -> None:
    a, b = codec.encode(Signup("A", "Ann", "ann@x.org")), codec.encode(Signup("B", "Bob", "bob@x.org"))
    assert keyring.forget("A")
    assert codec.decode(a).message == Signup("A", None, "[erased]")
    assert codec.decode(a).erased == ("name", "email") and codec.decode(b).erased == ()
    assert codec.decode(b).message == Signup("B", "Bob", "bob@x.org")
    again = codec.encode(Signup("A", "Ann again", "new@x.org"))  # a new key: only new records read
    assert codec.decode(again).message.name == "Ann again" and codec.decode(a).message.name is None


def test_a_tampered_ciphertext_is_a_decode_error_with_its_dlq_reason(codec: AvroCodec) -> None:
    data = bytearray(codec.encode(Signup("A", "Ann", "ann@x.org", "")))
    data[-3] ^= 0x01  # inside the email's GCM tag (the last field is an empty string)
    with pytest.raises(TamperedField, match="authentication failed") as caught:
        codec.decode(bytes(data))
    assert caught.value.reason == "tampered_ciphertext"


def test_a_ciphertext_moved_to_another_field_is_tampered(codec: AvroCodec) -> None:
    data = codec.encode(Signup("A", "Ann", "ann@x.org"))
    record = _raw(codec, data)
    swapped = {**record, "name": record["email"], "email": record["name"]}
    with pytest.raises(TamperedField):
        codec.decode(codec.encode_record("Signup", 1, swapped))


def test_plaintext_where_a_sealed_field_belongs_is_refused_never_passed_through(codec: AvroCodec) -> None:
    forged = codec.encode_record("Signup", 1, {"customer_id": "A", "name": b"Ann", "email": b"", "plan": "x"})
    with pytest.raises(MalformedField) as caught:
        codec.decode(forged)
    assert caught.value.reason == "malformed_ciphertext"


def test_types_without_personal_fields_keep_the_generated_encoders(codec: AvroCodec) -> None:
    assert codec.personal("Plain") is None and codec.personal("Signup") is not None
    assert (
        codec._writers[Plain].of_object is not None
        and codec._writers[Signup].of_object is None
        and codec._writers[Signup].sealed is not None
    )
    assert codec.decode(codec.encode(Plain("s", 2))).message == Plain("s", 2)


def test_an_offline_codec_seals_with_keys_in_memory(tmp_path: Path) -> None:
    codec = AvroCodec.offline(_catalog(tmp_path))
    assert codec.decode(codec.encode(Signup("A", "Ann", "a@x"))).message == Signup("A", "Ann", "a@x")


@pytest.mark.parametrize(
    ("field", "problem"),
    [
        ({"name": "n", "type": "string", "streams.pii": True, "streams.subject": "id"}, "bytes"),
        ({"name": "n", "type": "bytes", "streams.pii": True}, "must name a field"),
        ({"name": "n", "type": "bytes", "streams.pii": True, "streams.subject": "n"}, "plain `string`"),
    ],
)
def test_a_personal_field_that_cannot_be_sealed_is_refused(field: dict[str, object], problem: str) -> None:
    schema = {"type": "record", "name": "R", "fields": [{"name": "id", "type": "string"}, field]}
    with pytest.raises(PersonalSchemaError, match=problem):
        personal_plan("R", schema)


@settings(max_examples=60, deadline=None)
@given(
    subject=st.text(min_size=1, max_size=20),
    name=st.none() | st.text(max_size=50),
    email=st.text(max_size=50),
)
def test_any_values_round_trip(
    tmp_path_factory: pytest.TempPathFactory, subject: str, name: str | None, email: str
) -> None:
    codec = _shared_codec(tmp_path_factory)
    message = Signup(subject, name, email)
    assert codec.decode(codec.encode(message)).message == message


_CODECS: dict[str, AvroCodec] = {}


def _shared_codec(factory: pytest.TempPathFactory) -> AvroCodec:
    if "c" not in _CODECS:
        _CODECS["c"] = AvroCodec.offline(_catalog(factory.mktemp("personal")))
    return _CODECS["c"]


def _raw(codec: AvroCodec, data: bytes) -> dict[str, object]:
    import io

    import fastavro

    sv = codec.catalog.latest("Signup")
    return fastavro.schemaless_reader(io.BytesIO(data[5:]), sv.parsed, sv.parsed)  # type: ignore[return-value]


def test_copies_that_cannot_be_shredded_get_the_replacement_not_the_value(codec: AvroCodec) -> None:
    data = codec.encode(Signup("A", "Ann", "ann@x.org", "pro"))
    assert codec.decode(data).message.name == "Ann"
    unopened = codec.decode(data, keep_personal=False)
    assert unopened.message == Signup("A", None, "[erased]", "pro") and unopened.erased == ("name", "email")
    tampered = bytearray(data)
    tampered[-5] ^= 0x01
    assert codec.decode(bytes(tampered), keep_personal=False).message.name is None  # never opened
    plain = codec.encode(Plain("s", 1))
    assert codec.decode(plain, keep_personal=False).message == Plain("s", 1)


def test_json_input_and_command_limits_take_the_plain_value_of_a_personal_field() -> None:
    from streams.contexts.orders import PlaceOrder
    from streams.contexts.orders import context as orders
    from streams.wire.limits import CommandLimits, FieldTooLong
    from streams.wire.schemas import catalog_for
    from streams.wire.validation import JsonInvalid, compile_validator

    catalog = catalog_for(orders)
    check = compile_validator(catalog.latest("PlaceOrder").raw)
    check({"customer_id": "c-1", "customer_name": "Ada", "customer_email": None})
    with pytest.raises(JsonInvalid, match="customer_name"):
        check({"customer_id": "c-1", "customer_name": 7})
    limits = CommandLimits(catalog, ["PlaceOrder"])
    with pytest.raises(FieldTooLong, match="customer_name"):
        limits.check_message("PlaceOrder", PlaceOrder("c-1", "EUR", "x" * 201))


def test_records_without_personal_values_need_no_keys() -> None:
    from streams.contexts.orders import OrderPlaced, PlaceOrder
    from streams.contexts.orders import context as orders
    from streams.wire.schemas import catalog_for

    def no_master_key() -> Keyring:
        raise NoMasterKey("none configured")

    codec = AvroCodec.offline(catalog_for(orders), no_master_key)
    for message in (PlaceOrder("c-1", "EUR"), OrderPlaced("c-1", "EUR")):
        assert codec.decode(codec.encode(message)).message == message
    with pytest.raises(NoMasterKey):
        codec.encode(OrderPlaced("c-1", "EUR", "Ada"))
