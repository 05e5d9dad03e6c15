"""coordinate_operation and CoordinationServiceWrapper with the real components."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from coordination import ValidationError
from coordination.integration import CoordinationServiceWrapper, coordinate_operation
from coordination.validation import CoordinationValidator

from .conftest import op_count

RULES = {"required_fields": ["user_id", "data"]}


def test_validation_then_retries_then_timing(
    components: dict[str, Any], sleeps: list[float]
) -> None:
    calls: list[str] = []

    @coordinate_operation(RULES, {"max_retries": 2}, "update_user_profile", **components)
    def update_user_profile(user_id: str, data: dict[str, Any]) -> dict[str, Any]:
        calls.append(user_id)
        if len(calls) == 1:
            raise ConnectionError("flaky database")
        return {"status": "updated", "user_id": user_id}

    assert update_user_profile("7", {"name": "Ann"}) == {"status": "updated", "user_id": "7"}
    assert calls == ["7", "7"]
    assert sleeps == [0.5]
    assert op_count(components["performance_monitor"], "update_user_profile") == 1
    report = components["error_handler"].get_error_report()
    assert report["operations"]["update_user_profile"]["retries"] == 1


def test_a_validation_failure_is_never_retried(components: dict[str, Any]) -> None:
    calls: list[Any] = []

    @coordinate_operation(RULES, {"max_retries": 3}, "op", **components)
    def op(user_id: Any, data: Any = None) -> None:
        calls.append(user_id)

    with pytest.raises(ValidationError, match="data") as caught:
        op("7")
    assert isinstance(caught.value, ValueError)  # the spec's examples catch ValueError
    assert calls == []
    assert components["error_handler"].get_error_report()["total_operations"] == 0
    validation = components["validator"].get_validation_report()
    assert validation["invalid"] == 1


def test_signature_name_and_methods_are_kept(components: dict[str, Any]) -> None:
    class Profiles:
        @coordinate_operation(RULES, {"max_retries": 0}, "profiles.update", **components)
        def update(self, user_id: str, data: dict[str, Any], *, force: bool = False) -> str:
            """Update a profile."""
            return f"{user_id}:{force}"

    assert Profiles().update("1", {}, force=True) == "1:True"
    with pytest.raises(ValidationError):
        Profiles().update(None, {})  # type: ignore[arg-type]
    assert Profiles.update.__name__ == "update"
    assert Profiles.update.__doc__ == "Update a profile."
    assert list(inspect.signature(Profiles.update).parameters) == [
        "self",
        "user_id",
        "data",
        "force",
    ]


async def test_async_functions_stay_async(components: dict[str, Any]) -> None:
    attempts: list[int] = []

    @coordinate_operation(RULES, {"max_retries": 1}, "async_op", **components)
    async def update(user_id: str, data: dict[str, Any]) -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise TimeoutError("slow")
        return user_id

    assert inspect.iscoroutinefunction(update)
    assert await update("9", {}) == "9"
    with pytest.raises(ValidationError):
        await update("9", None)  # type: ignore[arg-type]
    assert op_count(components["performance_monitor"], "async_op") == 1


def test_switches_off_return_the_function_itself(components: dict[str, Any]) -> None:
    config = components["config"].replace(
        enable_validation=False, enable_performance_monitoring=False
    )

    def plain(user_id: str, data: Any) -> str:
        return user_id

    decorated = coordinate_operation(RULES, None, "plain", config=config)(plain)
    assert decorated is plain  # nothing added: no cost per call


def test_bad_arguments_are_named(components: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="operation_name"):
        coordinate_operation(operation_name="")
    with pytest.raises(TypeError, match="error_config must be a mapping"):
        coordinate_operation(error_config=[("max_retries", 1)])  # type: ignore[arg-type]


class LegacyUserService:
    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []

    def create_user(self, user_data: dict[str, Any]) -> dict[str, str]:
        self.created.append(user_data)
        return {"user_id": "123", "status": "created"}

    async def fetch(self, user_id: str) -> str:
        return user_id


def test_service_wrapper_checks_the_rules_the_spec_ignored(components: dict[str, Any]) -> None:
    service = LegacyUserService()
    wrapper = CoordinationServiceWrapper(service, **components)
    create = wrapper.wrap_method(
        "create_user",
        validation_rules={"required_fields": ["name", "email"]},
        error_config={"max_retries": 3, "error_severity": "MEDIUM"},
    )
    assert create({"name": "John", "email": "john@example.com"}) == {
        "user_id": "123",
        "status": "created",
    }
    with pytest.raises(ValidationError, match="email"):
        create({"name": "John"})
    assert len(service.created) == 1
    status = wrapper.get_coordination_status()
    assert status["performance"]["operations"]["create_user"]["count"] == 1
    assert status["validation"]["invalid"] == 1
    assert status["error_handling"]["operations"]["create_user"]["calls"] == 1


async def test_service_wrapper_wraps_async_methods(components: dict[str, Any]) -> None:
    wrapper = CoordinationServiceWrapper(LegacyUserService(), **components)
    fetch = wrapper.wrap_method("fetch", validation_rules={"required_fields": ["user_id"]})
    assert inspect.iscoroutinefunction(fetch)
    assert await fetch("42") == "42"


def test_service_wrapper_names_a_missing_method(components: dict[str, Any]) -> None:
    wrapper = CoordinationServiceWrapper(LegacyUserService(), **components)
    with pytest.raises(AttributeError, match="LegacyUserService has no method 'delete_user'"):
        wrapper.wrap_method("delete_user")


def test_rules_compile_once_and_keyword_calls_are_checked(components: dict[str, Any]) -> None:
    class CountingValidator(CoordinationValidator):
        compiled = 0

        def compile(self, rules: Any, *, name: str | None = None) -> Any:
            CountingValidator.compiled += 1
            return super().compile(rules, name=name)

    validator = CountingValidator(config=components["config"])

    @coordinate_operation(RULES, operation_name="kw", validator=validator, config={})
    def update(user_id: Any, data: Any = None, *, note: str = "") -> str:
        return f"{user_id}{note}"

    assert update(user_id="1", data={}, note="!") == "1!"
    assert update("2", data={}) == "2"
    with pytest.raises(ValidationError, match="data"):
        update(user_id="3")  # the default None breaks the rule set
    assert CountingValidator.compiled == 1
    assert validator.get_validation_report()["total_validations"] == 3


def test_a_call_that_does_not_fit_the_signature_raises_type_error(
    components: dict[str, Any],
) -> None:
    @coordinate_operation(RULES, operation_name="fit", **components)
    def update(user_id: Any, data: Any) -> None:
        raise AssertionError("never called")

    with pytest.raises(TypeError, match="missing a required argument: 'data'"):
        update("1")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        update("1", {}, colour="red")  # type: ignore[call-arg]
