"""validate_input: arguments checked before the call, for functions, methods and coroutines."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest

from coordination import ValidationError
from coordination._defaults import ProcessDefault
from coordination.validation import CoordinationValidator, RuleSetError, validate_input


@pytest.fixture
def validator() -> CoordinationValidator:
    return CoordinationValidator(config={})


def test_the_spec_create_user_example(validator: CoordinationValidator) -> None:
    calls: list[Any] = []

    class LegacyUserService:
        @validate_input({"required_fields": ["name", "email"]}, validator=validator)
        def create_user(self, user_data: dict[str, Any]) -> dict[str, str]:
            calls.append(user_data)
            return {"user_id": "123", "status": "created"}

    service = LegacyUserService()
    assert service.create_user({"name": "John", "email": "john@example.com"})["status"] == "created"
    with pytest.raises(ValidationError) as caught:
        service.create_user({"name": "John"})
    assert isinstance(caught.value, ValueError)
    assert [(i.code, i.path) for i in caught.value.errors] == [("required", ("email",))]
    assert len(calls) == 1  # the invalid call never ran


def test_fields_are_parameter_names(validator: CoordinationValidator) -> None:
    rules = {"fields": {"user_id": {"type": "string", "min_length": 1}, "data": "object"}}

    @validate_input({**rules, "required_fields": ["user_id", "data"]}, validator=validator)
    def update_user_profile(user_id: str, data: dict[str, Any], dry_run: bool = False) -> str:
        return user_id

    assert update_user_profile("42", {"a": 1}) == "42"
    assert update_user_profile(user_id="42", data={}, dry_run=True) == "42"
    with pytest.raises(ValidationError, match="user_id: must have at least 1 character"):
        update_user_profile("", {})
    with pytest.raises(ValidationError, match="data: must be an object"):
        update_user_profile("42", [1])  # type: ignore[arg-type]


def test_defaults_count_as_given(validator: CoordinationValidator) -> None:
    @validate_input({"required_fields": ["email"]}, validator=validator)
    def invite(email: str | None = None) -> str | None:
        return email

    assert invite("a@b.c") == "a@b.c"
    with pytest.raises(ValidationError, match="email: is required and may not be null"):
        invite()


async def test_async_functions(validator: CoordinationValidator) -> None:
    @validate_input({"fields": {"n": {"type": "integer", "min": 0}}}, validator=validator)
    async def square(n: int) -> int:
        return n * n

    assert inspect.iscoroutinefunction(square)
    assert await square(3) == 9
    with pytest.raises(ValidationError, match="n: must be ≥ 0"):
        await square(-1)


async def test_async_methods_with_a_mapping_argument(validator: CoordinationValidator) -> None:
    class Handler:
        @validate_input({"fields": {"type": {"allowed": ["login"]}}}, validator=validator)
        async def handle(self, event: dict[str, Any]) -> str:
            return str(event["type"])

    assert await Handler().handle({"type": "login"}) == "login"
    with pytest.raises(ValidationError, match="type: must be one of 'login'"):
        await Handler().handle({"type": "logout"})


def test_signature_and_metadata_are_kept(validator: CoordinationValidator) -> None:
    def original(a: int, *, b: str = "x") -> str:
        """Docs."""
        return b * a

    wrapped = validate_input({"fields": {"a": "integer"}}, validator=validator)(original)
    assert inspect.signature(wrapped) == inspect.signature(original)
    assert wrapped.__name__ == "original"
    assert wrapped.__doc__ == "Docs."
    assert wrapped(2, b="y") == "yy"


def test_kwargs_parameters_are_searched(validator: CoordinationValidator) -> None:
    @validate_input({"required_fields": ["token"]}, validator=validator)
    def call(**options: Any) -> int:
        return len(options)

    assert call(token="t", other=1) == 2
    with pytest.raises(ValidationError) as caught:
        call(other=1)
    assert caught.value.errors[0].path == ("token",)


def test_bad_rules_fail_at_decoration(validator: CoordinationValidator) -> None:
    with pytest.raises(RuleSetError, match="unknown field keyword 'min_lenght'"):
        validate_input({"fields": {"a": {"min_lenght": 1}}}, validator=validator)


def test_named_rule_sets_are_looked_up_at_call_time(tmp_path: Path) -> None:
    (tmp_path / "users.yaml").write_text("name: users\nrequired_fields: [name]\n")
    validator = CoordinationValidator(tmp_path, config={})

    @validate_input("users", validator=validator)
    def create(name: str | None = None) -> str | None:
        return name

    assert create("Ann") == "Ann"
    (tmp_path / "users.yaml").write_text("name: users\nrequired_fields: [name, email]\n")
    validator.reload_rules()
    with pytest.raises(ValidationError, match="email: is required"):
        create("Ann")


def test_default_validator_is_shared(
    monkeypatch: pytest.MonkeyPatch, clean_environment: None
) -> None:
    from coordination.validation import _decorator, default_validator

    monkeypatch.setattr(_decorator, "_DEFAULT", ProcessDefault(CoordinationValidator))

    @validate_input({"required_fields": ["x"]})
    def f(x: int | None = None) -> int | None:
        return x

    assert f(1) == 1
    shared = default_validator()
    assert default_validator() is shared
    assert shared.get_validation_report()["valid"] == 1
