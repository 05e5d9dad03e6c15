"""The handler's API as the spec uses it, the report, health, severity and decorators."""

from __future__ import annotations

import inspect
import json
import logging
from functools import wraps
from typing import Any

import pytest

from coordination import ConfigError, HealthStatus
from coordination.error_handling import (
    CircuitState,
    CoordinationErrorHandler,
    ErrorRecord,
    ErrorSeverity,
    default_error_handler,
    handle_errors,
)

from .conftest import FakeClock

REPORT_KEYS = {
    "status",
    "total_operations",
    "successful_operations",
    "failed_operations",
    "total_retries",
    "rejected_by_circuit_breaker",
    "errors_by_type",
    "errors_by_severity",
    "recent_errors",
    "circuit_breakers",
    "operations",
}
OPERATION_KEYS = {
    "calls",
    "successes",
    "failures",
    "retries",
    "rejections",
    "timeouts",
    "bulkhead_rejections",
    "fallbacks",
    "severity",
}


def test_the_spec_service_wrapper_call_runs_as_written() -> None:
    class LegacyUserService:
        def create_user(self, user_data: dict[str, str]) -> dict[str, str]:
            return {"user_id": "123", "status": "created"}

    service = LegacyUserService()
    error_handler = CoordinationErrorHandler()
    original_method = service.create_user
    error_config: dict[str, Any] | None = {"max_retries": 3, "error_severity": "MEDIUM"}

    @wraps(original_method)
    def wrapped_method(*args: Any, **kwargs: Any) -> Any:
        return error_handler.execute_with_error_handling(
            operation=original_method,
            args=args,
            kwargs=kwargs,
            **(error_config or {}),
        )

    result = wrapped_method({"name": "John", "email": "john@example.com"})
    assert result == {"user_id": "123", "status": "created"}
    report = error_handler.get_error_report()
    [name] = report["operations"]
    assert name.endswith("LegacyUserService.create_user")
    assert report["operations"][name]["successes"] == 1


def test_the_spec_middleware_call_with_a_list_of_args() -> None:
    error_handler = CoordinationErrorHandler()

    def app(environ: dict[str, str], start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        return [environ["PATH_INFO"].encode()]

    response = error_handler.execute_with_error_handling(
        operation=app, args=[{"PATH_INFO": "/x"}, lambda *a: None], error_severity="MEDIUM"
    )
    assert response == [b"/x"]


def test_the_spec_decorator_form() -> None:
    error_config = {"max_retries": 3, "error_severity": "MEDIUM"}

    @handle_errors(**error_config)
    def process_order(order_data: dict[str, Any]) -> dict[str, Any]:
        return {"order_id": order_data["id"], "status": "processed"}

    assert process_order({"id": 7}) == {"order_id": 7, "status": "processed"}
    stats = default_error_handler().operation_stats()
    assert stats[process_order.__qualname__]["successes"] >= 1


def test_decorated_functions_keep_their_signature_and_metadata(
    handler: CoordinationErrorHandler,
) -> None:
    def price(item: str, quantity: int = 1, *, currency: str = "EUR") -> float:
        """The price of an item."""
        return 2.5 * quantity

    wrapped = handle_errors(handler=handler)(price)
    assert wrapped.__name__ == "price"
    assert wrapped.__doc__ == "The price of an item."
    assert inspect.signature(wrapped) == inspect.signature(price)
    assert wrapped("tea", 2) == 5.0


def test_methods_static_and_class_methods(handler: CoordinationErrorHandler) -> None:
    class Repo:
        factor = 3

        def __init__(self) -> None:
            self.base = 1

        @handle_errors(handler=handler)
        def get(self, n: int) -> int:
            return self.base + n

        @handle_errors(handler=handler)
        @staticmethod
        def double(n: int) -> int:
            return 2 * n

        @handle_errors(handler=handler)
        @classmethod
        def triple(cls, n: int) -> int:
            return cls.factor * n

    repo = Repo()
    assert (repo.get(1), Repo.double(2), Repo.triple(3)) == (2, 4, 9)
    assert "test_methods_static_and_class_methods.<locals>.Repo.get" in handler.operation_stats()


def test_bare_decorator_uses_the_default_handler() -> None:
    @handle_errors
    def ping() -> str:
        return "pong"

    assert ping() == "pong"
    assert default_error_handler() is default_error_handler()


def test_a_typo_in_handle_errors_fails_at_decoration_time() -> None:
    with pytest.raises(ConfigError, match="did you mean 'error_severity'"):
        handle_errors(eror_severity="HIGH")


def test_bad_operation_and_handler_arguments(handler: CoordinationErrorHandler) -> None:
    with pytest.raises(TypeError, match="operation must be callable"):
        handler.execute_with_error_handling("not a function")
    with pytest.raises(TypeError, match="CoordinationErrorHandler"):
        handle_errors(handler=object())  # type: ignore[call-overload]


def test_report_has_the_contract_keys_and_is_json(
    handler: CoordinationErrorHandler,
) -> None:
    def down() -> None:
        raise ConnectionError("db unreachable: password=hunter2 token: abc123")

    with pytest.raises(ConnectionError):
        handler.execute_with_error_handling(
            down, max_retries=1, base_delay=0, error_severity="high", operation_name="db"
        )
    handler.execute_with_error_handling(lambda: 1, operation_name="cache")
    report = handler.get_error_report()
    assert set(report) >= REPORT_KEYS
    json.dumps(report)
    assert set(report["operations"]["db"]) >= OPERATION_KEYS
    assert report["total_operations"] == 2
    assert report["failed_operations"] == 1
    assert report["total_retries"] == 1
    assert report["errors_by_type"] == {"ConnectionError": 2}
    assert report["errors_by_severity"] == {"HIGH": 2}
    assert report["operations"]["db"]["severity"] == "HIGH"
    assert report["circuit_breakers"]["cache"]["state"] == "CLOSED"
    [record] = report["recent_errors"]
    assert record["operation"] == "db"
    assert record["attempts"] == 2
    assert "hunter2" not in record["message"]
    assert "abc123" not in record["message"]
    assert "password=[redacted]" in record["message"]


def test_recent_errors_are_bounded_and_truncated(clock: FakeClock) -> None:
    handler = CoordinationErrorHandler({}, clock=clock, max_recent_errors=5)

    def huge() -> None:
        raise ValueError("x" * 10_000)

    for _ in range(20):
        with pytest.raises(ValueError):
            handler.execute_with_error_handling(huge, max_retries=0, circuit_breaker_threshold=100)
    recent = handler.get_error_report()["recent_errors"]
    assert len(recent) == 5
    assert all(len(r["message"]) < 400 for r in recent)


def test_health_follows_the_breakers(handler: CoordinationErrorHandler) -> None:
    def down() -> None:
        raise ConnectionError("down")

    assert handler.get_health_status()["status"] == HealthStatus.HEALTHY
    handler.execute_with_error_handling(lambda: 1, operation_name="ok")
    with pytest.raises(ConnectionError):
        handler.execute_with_error_handling(
            down, max_retries=0, circuit_breaker_threshold=1, operation_name="search"
        )
    health = handler.get_health_status()
    assert health["status"] == "DEGRADED"
    assert health["open_breakers"] == ["search"]
    handler.circuit_breaker("ok").force_open()
    assert handler.get_health_status()["status"] == "UNHEALTHY"  # every breaker open
    handler.reset_circuit_breaker()
    with pytest.raises(ConnectionError):
        handler.execute_with_error_handling(
            down,
            max_retries=0,
            circuit_breaker_threshold=1,
            error_severity="CRITICAL",
            operation_name="payments",
        )
    assert handler.get_error_report()["status"] == "UNHEALTHY"  # a critical breaker open


def test_severity_parsing_logging_and_alerts(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    assert ErrorSeverity.parse("critical") is ErrorSeverity.CRITICAL
    assert ErrorSeverity.parse(ErrorSeverity.LOW) is ErrorSeverity.LOW
    with pytest.raises(ConfigError, match="LOW, MEDIUM, HIGH, CRITICAL"):
        ErrorSeverity.parse("fatal")
    alerts: list[ErrorRecord] = []
    handler = CoordinationErrorHandler({}, clock=clock, on_alert=alerts.append)

    def down() -> None:
        raise ConnectionError("down")

    caplog.set_level(logging.DEBUG, logger="coordination.error_handling")
    for severity in ("LOW", "HIGH", "CRITICAL"):
        with pytest.raises(ConnectionError):
            handler.execute_with_error_handling(
                down, max_retries=0, error_severity=severity, operation_name=severity
            )
    finals = {r.levelno for r in caplog.records if "failed after" in r.getMessage()}
    assert finals == {logging.DEBUG, logging.WARNING, logging.ERROR}
    assert [a.operation for a in alerts] == ["CRITICAL"]
    assert alerts[0].severity is ErrorSeverity.CRITICAL


def test_operation_names_are_bounded(clock: FakeClock) -> None:
    handler = CoordinationErrorHandler({"max_operation_names": 3}, clock=clock)
    for n in range(10):
        handler.execute_with_error_handling(int, args=(n,), operation_name=f"user-{n}")
    stats = handler.operation_stats()
    assert len(stats) == 4
    assert stats["__overflow__"]["successes"] == 7


def test_circuit_breaker_accessor(handler: CoordinationErrorHandler) -> None:
    breaker = handler.circuit_breaker("inventory")
    assert breaker.state is CircuitState.CLOSED
    breaker.force_open()
    assert handler.get_error_report()["circuit_breakers"]["inventory"]["forced_open"] is True


def test_debug_mode_logs_each_failed_attempt(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    handler = CoordinationErrorHandler({}, debug=True, clock=clock, sleep=clock.sleep)
    caplog.set_level(logging.DEBUG, logger="coordination.error_handling")
    attempts = iter([ConnectionError("a"), None])

    def flaky() -> str:
        error = next(attempts)
        if error:
            raise error
        return "ok"

    handler.execute_with_error_handling(flaky, operation_name="dbg")
    assert any("attempt failed" in r.getMessage() for r in caplog.records)


def test_generator_functions_are_refused_with_a_reason(handler: CoordinationErrorHandler) -> None:
    def rows() -> Any:
        yield 1

    async def events() -> Any:
        yield 1

    for func in (rows, events):
        with pytest.raises(TypeError, match="generator function"):
            handler.decorate(func)
