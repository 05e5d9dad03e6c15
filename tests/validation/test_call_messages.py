"""One rule turns a call into the validated message (``CallMessages``), for every door.

The same cases run through ``validate_input``, ``coordinate_operation`` and
``CoordinationServiceWrapper.wrap_method``; Hypothesis adds arguments of any type that no
rule names, which must never be an error.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import socket
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordination.integration import CoordinationServiceWrapper, coordinate_operation
from coordination.validation import CoordinationValidator, ValidationError, validate_input
from coordination.validation._arguments import CallMessages

RULES = {"fields": {"user_id": {"type": "string", "min_length": 1, "required": True}}}


class Colour(enum.Enum):
    RED = "red"


class Profile(pydantic.BaseModel):
    user_id: str
    joined: datetime.datetime
    tags: frozenset[str] = frozenset()


@dataclasses.dataclass
class Order:
    user_id: str
    placed: datetime.date
    amount: decimal.Decimal
    ref: uuid.UUID
    colour: Colour = Colour.RED


class Headers(Mapping[str, Any]):
    """A Mapping that is not a dict (as a Starlette Request is)."""

    def __getitem__(self, key: str) -> Any:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


Door = Callable[[Callable[..., Any], Any, CoordinationValidator], Callable[..., Any]]


def through_validate_input(func: Callable[..., Any], rules: Any, v: CoordinationValidator) -> Any:
    return validate_input(rules, validator=v)(func)


def through_coordinate_operation(
    func: Callable[..., Any], rules: Any, v: CoordinationValidator
) -> Any:
    return coordinate_operation(validation_rules=rules, validator=v, config={})(func)


def through_wrap_method(func: Callable[..., Any], rules: Any, v: CoordinationValidator) -> Any:
    class Service:
        pass

    service = Service()
    setattr(service, "call", func)  # noqa: B010 (an instance attribute, as a bound method is)
    return CoordinationServiceWrapper(service, validator=v, config={}).wrap_method(
        "call", validation_rules=rules
    )


DOORS = [through_validate_input, through_coordinate_operation, through_wrap_method]


@pytest.fixture
def validator() -> CoordinationValidator:
    return CoordinationValidator(config={})


@pytest.mark.parametrize("door", DOORS)
def test_named_arguments_the_rules_name_and_nothing_else(
    door: Door, validator: CoordinationValidator
) -> None:
    def update(user_id: str, when: datetime.datetime, conn: Any, data: Any = None) -> str:
        return user_id

    checked = door(update, RULES, validator)
    with socket.socket() as conn:  # not JSON, not named: never an error
        assert checked("7", datetime.datetime.now(datetime.UTC), conn) == "7"
        assert checked(user_id="7", when=datetime.date.today(), conn=conn, data={1, 2}) == "7"
        with pytest.raises(ValidationError) as caught:
            checked("", datetime.datetime.now(datetime.UTC), conn)
    assert [e.pointer for e in caught.value.errors] == ["/user_id"]
    with pytest.raises(TypeError):  # a call that does not fit: the call's own error
        checked("7")


@pytest.mark.parametrize("door", DOORS)
def test_a_single_record_argument_gives_the_fields(
    door: Door, validator: CoordinationValidator
) -> None:
    def create(record: Any, request: Headers, now: datetime.datetime) -> str:
        return "ok"

    checked = door(create, RULES, validator)
    now = datetime.datetime.now(datetime.UTC)
    profile = Profile(user_id="u1", joined=now, tags=frozenset({"a"}))
    order = Order("u2", now.date(), decimal.Decimal("1.5"), uuid.uuid4())
    for record in ({"user_id": "u3"}, profile, order):
        assert checked(record, Headers(), now) == "ok"  # a dict beats a non-dict Mapping
    for record in (
        {"user_id": ""},
        Profile(user_id="", joined=now),
        dataclasses.replace(order, user_id=""),
    ):
        with pytest.raises(ValidationError, match="user_id"):
            checked(record, Headers(), now)


def test_models_and_dataclasses_become_their_json_form() -> None:
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    seen: list[Any] = []

    class Recording(CoordinationValidator):
        def validate(self, data: Any, rule_set: Any) -> Any:
            seen.append(data)
            return super().validate(data, rule_set)

    ref = uuid.UUID(int=1)
    order = Order("u", now.date(), decimal.Decimal("2.50"), ref)

    @validate_input({"fields": {"amount": "string"}}, validator=Recording(config={}))
    def place(order: Order) -> None:
        pass

    place(order)
    assert seen == [
        {
            "user_id": "u",
            "placed": "2026-01-01",
            "amount": "2.50",
            "ref": str(ref),
            "colour": "red",
        }
    ]


def test_a_rule_set_that_names_no_field_checks_the_single_argument(
    validator: CoordinationValidator,
) -> None:
    @validate_input({"schema": {"type": "array", "maxItems": 2}}, validator=validator)
    def ingest(batch: list[Any]) -> int:
        return len(batch)

    assert ingest([Profile(user_id="a", joined=datetime.datetime.now(datetime.UTC))]) == 1
    with pytest.raises(ValidationError) as caught:
        ingest([1, 2, 3])
    assert [e.code for e in caught.value.errors] == ["max_items"]


def test_condition_fields_are_named_fields(validator: CoordinationValidator) -> None:
    rules = {
        "fields": {"status": "string"},
        "conditions": [{"when": {"status": "active"}, "forbid": ["closed_reason"]}],
    }

    @validate_input(rules, validator=validator)
    def change(status: str, closed_reason: str | None = None, *, actor: object = None) -> str:
        return status

    assert change("closed", "late", actor=object()) == "closed"
    with pytest.raises(ValidationError) as caught:  # closed_reason is in the message
        change("active", "late")
    assert [e.code for e in caught.value.errors] == ["forbidden"]


def test_every_parameter_kind_binds_as_python_does() -> None:
    def f(a: Any, /, b: Any, *args: Any, c: Any, d: Any = 4, **kwargs: Any) -> None:
        pass

    messages = CallMessages(f)
    fields = frozenset({"a", "b", "c", "d"})
    assert messages.message((1, 2), {"c": 3}, fields) == {"a": 1, "b": 2, "c": 3, "d": 4}
    assert messages.message((1,), {"b": 2, "c": 3, "e": 5}, fields | {"e"}) == {
        "a": 1, "b": 2, "c": 3, "d": 4, "e": 5,
    }  # fmt: skip
    assert messages.message((1, 2, 9, 9), {"c": 3, "d": 0}, fields)["d"] == 0
    # a positional-only name given as a keyword lands in **kwargs, as in Python
    assert messages.message((1,), {"b": 2, "a": 0, "c": 3}, fields)["a"] == 1
    with pytest.raises(TypeError):
        messages.message((1, 2), {"b": 2, "c": 3}, fields)  # b given twice

    def g(a: Any, /, b: Any) -> None:
        pass

    with pytest.raises(TypeError):
        CallMessages(g).message((), {"a": 1, "b": 2}, frozenset({"a", "b"}))
    with pytest.raises(TypeError):
        CallMessages(g).message((1,), {"b": 2, "z": 3}, frozenset({"a", "b"}))

    class Methods:
        def m(self, x: Any) -> None: ...

        @classmethod
        def k(cls, x: Any) -> None: ...

    assert CallMessages(Methods.m).message((Methods(), 1), {}, frozenset({"x"})) == {"x": 1}
    assert CallMessages(Methods().m).message((1,), {}, frozenset({"x"})) == {"x": 1}
    assert CallMessages(Methods.k).message((1,), {}, frozenset({"x"})) == {"x": 1}


def test_a_model_that_cannot_be_dumped_as_json_is_still_checked() -> None:
    class WithSocket(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(arbitrary_types_allowed=True)
        user_id: str
        conn: socket.socket

    validator = CoordinationValidator(config={})

    @validate_input(RULES, validator=validator)
    def open_session(session: WithSocket, when: datetime.datetime) -> str:
        return session.user_id

    with socket.socket() as conn:
        now = datetime.datetime.now(datetime.UTC)
        assert open_session(WithSocket(user_id="u", conn=conn), now) == "u"
        with pytest.raises(ValidationError, match="user_id"):
            open_session(WithSocket(user_id="", conn=conn), now)


ODD_VALUES = st.one_of(
    st.datetimes(),
    st.dates(),
    st.decimals(allow_nan=False),
    st.uuids(),
    st.binary(max_size=8),
    st.sets(st.integers(), max_size=3),
    st.builds(object),
    st.builds(Order, st.text(), st.dates(), st.decimals(allow_nan=False), st.uuids()),
    st.integers(min_value=10**5000, max_value=10**5000 + 1),
    st.floats(),
    st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), max_size=2),
)


@settings(max_examples=60, deadline=None)
@given(user_id=st.text(min_size=1, max_size=5).filter(lambda s: s.isascii()), extra=ODD_VALUES)
def test_arguments_no_rule_names_are_never_an_error(user_id: str, extra: Any) -> None:
    validator = CoordinationValidator(config={})

    def call(user_id: str, extra: Any, *rest: Any, **more: Any) -> str:
        return user_id

    for door in DOORS:
        checked = door(call, RULES, validator)
        assert checked(user_id, extra, extra, more=extra) == user_id
        assert checked(extra=extra, user_id=user_id) == user_id
