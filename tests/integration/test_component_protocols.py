"""Objects that implement exactly the component Protocols work through doors and readers.

``ValidatorLike``, ``ErrorHandlerLike`` and ``MonitorLike`` (``coordination._defaults``)
name every method the doors call; the minimal objects below implement those and nothing
else. A wrong object is refused with a TypeError when the door is built.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

from coordination import ValidationError
from coordination._defaults import ErrorHandlerLike, MonitorLike, ValidatorLike
from coordination.integration import (
    CoordinationEventProcessor,
    CoordinationServiceWrapper,
    coordinate_operation,
)
from coordination.observability import (
    CoordinationHealthChecker,
    CoordinationMetricsExporter,
    StatusPage,
)

pytestmark = pytest.mark.usefixtures("clean_environment")


class Result:
    def __init__(self, errors: list[str]) -> None:
        self.is_valid = not errors
        self.errors = errors


class MinimalValidator:
    """``ValidatorLike`` and nothing more: a rule is a list of required fields."""

    def __init__(self) -> None:
        self.checked = 0

    def compile(self, rules: Any, *, name: str | None = None) -> Any:
        return tuple(rules["required_fields"])

    def ensure_valid(self, data: Any, rule_set: Any) -> None:
        self.checked += 1
        # A validator that is not the library's cannot say which fields a rule names, so
        # a door hands it the call's single argument (coordination.validation._arguments).
        missing = [f for f in rule_set if not isinstance(data, Mapping) or f not in data]
        if missing:
            raise ValidationError([f"{f} is required" for f in missing])

    def validate_message_structure(self, data: Any, rules: Any = None) -> Result:
        return Result([] if isinstance(data, Mapping) else ["not a mapping"])

    def get_validation_report(self) -> dict[str, Any]:
        return {"total_validations": self.checked, "valid": self.checked, "invalid": 0}


class MinimalHandler:
    """``ErrorHandlerLike`` and nothing more: one retry, counted."""

    def __init__(self) -> None:
        self.calls = 0

    def decorate(self, func: Callable[..., Any], **error_config: Any) -> Callable[..., Any]:
        def protected(*args: Any, **kwargs: Any) -> Any:
            return self.execute_with_error_handling(func, args, kwargs, **error_config)

        return protected

    def execute_with_error_handling(
        self,
        operation: Callable[..., Any],
        args: Any = (),
        kwargs: Mapping[str, Any] | None = None,
        **overrides: Any,
    ) -> Any:
        self.calls += 1
        return operation(*args, **(kwargs or {}))

    async def aexecute_with_error_handling(
        self,
        operation: Callable[..., Any],
        args: Any = (),
        kwargs: Mapping[str, Any] | None = None,
        **overrides: Any,
    ) -> Any:
        self.calls += 1
        return await operation(*args, **(kwargs or {}))

    def get_error_report(self) -> dict[str, Any]:
        return {
            "status": "HEALTHY",
            "total_operations": self.calls,
            "operations": {"op": {"calls": self.calls, "successes": self.calls}},
        }

    def reset_circuit_breaker(self, name: str | None = None) -> None:
        pass


class MinimalMonitor:
    """``MonitorLike`` and nothing more."""

    def __init__(self) -> None:
        self.timed: list[str] = []
        self.durations: list[tuple[str, bool]] = []

    @contextlib.contextmanager
    def record_operation(self, name: str) -> Iterator[None]:
        self.timed.append(name)
        yield

    def record_duration(
        self, name: str, seconds: float, success: bool = True, error: Any = None
    ) -> None:
        self.durations.append((name, success))

    def get_performance_report(self) -> dict[str, Any]:
        return {"response_times": {"mean": 5.0}, "operations": {}}


def _protocol_methods(protocol: type) -> set[str]:
    return {n for n, v in vars(protocol).items() if not n.startswith("_") and callable(v)}


def test_the_minimal_objects_implement_exactly_the_protocols() -> None:
    for cls, protocol in (
        (MinimalValidator, ValidatorLike),
        (MinimalHandler, ErrorHandlerLike),
        (MinimalMonitor, MonitorLike),
    ):
        own = {n for n, v in vars(cls).items() if not n.startswith("_") and callable(v)}
        assert own == _protocol_methods(protocol), cls.__name__


def test_coordinate_operation_with_minimal_components_sync_and_async() -> None:
    validator, handler, monitor = MinimalValidator(), MinimalHandler(), MinimalMonitor()
    layers = {
        "validator": validator,
        "error_handler": handler,
        "performance_monitor": monitor,
        "validation_rules": {"required_fields": ["user_id"]},
        "error_config": {"max_retries": 1},
    }

    @coordinate_operation(operation_name="update_user", **layers)
    def update_user(user: dict[str, str]) -> str:
        return f"updated {user['user_id']}"

    @coordinate_operation(operation_name="load_user", **layers)
    async def load_user(user: dict[str, str]) -> str:
        return f"loaded {user['user_id']}"

    assert update_user({"user_id": "u1"}) == "updated u1"
    with pytest.raises(ValidationError):
        update_user({})
    # the minimal decorate() returns the coroutine its handler call made; awaited here
    assert asyncio.run(load_user({"user_id": "u2"})) == "loaded u2"
    assert monitor.timed == ["update_user", "load_user"]  # the invalid call never ran
    assert validator.checked == 3
    assert handler.calls == 2


def test_doors_with_minimal_components() -> None:
    validator, handler, monitor = MinimalValidator(), MinimalHandler(), MinimalMonitor()

    class Service:
        def ping(self, message: dict[str, int]) -> int:
            return message["n"] + 1

    wrapper = CoordinationServiceWrapper(
        Service(), validator=validator, error_handler=handler, performance_monitor=monitor
    )
    ping = wrapper.wrap_method("ping", {"required_fields": ["n"]}, error_config={})
    assert ping({"n": 1}) == 2
    assert monitor.timed == ["ping"]
    assert handler.calls == 1

    processor = CoordinationEventProcessor(
        lambda event, event_type: {"done": event_type},
        validator=validator,
        error_handler=handler,
        performance_monitor=monitor,
    )
    assert processor.process_event({"id": 1}, "created") == {"done": "created"}
    assert monitor.durations == [("event_created", True)]
    assert handler.calls == 2


def test_readers_with_minimal_components() -> None:
    validator, handler, monitor = MinimalValidator(), MinimalHandler(), MinimalMonitor()
    handler.execute_with_error_handling(lambda: None)
    components = {"validator": validator, "error_handler": handler, "monitor": monitor}
    health = CoordinationHealthChecker(components, config={}).check_health()
    assert health["components"]["error_handler"]["status"] == "HEALTHY"
    assert health["components"]["monitor"] == {"status": "UNKNOWN"}
    text = CoordinationMetricsExporter(components).export_metrics()
    assert 'coordination_total_operations{component="error_handler"} 1.0' in text
    assert 'coordination_response_time_seconds{component="monitor"} 0.005' in text
    assert 'coordination_export_error{component="validator"} 0.0' in text
    page = StatusPage(components, config={}).snapshot()
    assert page["validation"] == {"total": 0, "valid": 0, "invalid": 0}
    assert page["component_errors"] == {}


@pytest.mark.parametrize("part", ["validator", "error_handler", "performance_monitor"])
def test_a_wrong_object_is_a_type_error_when_the_door_is_built(part: str) -> None:
    class Service:
        def ping(self) -> None: ...

    with pytest.raises(TypeError, match=f"{part} must provide .*Like's methods; object lacks"):
        CoordinationServiceWrapper(Service(), **{part: object()})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=f"{part} must provide"):
        coordinate_operation(**{part: object()})  # type: ignore[arg-type]


def test_a_monitor_missing_one_method_is_named() -> None:
    class NoReport:
        def record_operation(self, name: str) -> Any: ...
        def record_duration(self, name: str, seconds: float, *a: Any, **k: Any) -> None: ...

    with pytest.raises(TypeError, match="NoReport lacks get_performance_report"):
        coordinate_operation(performance_monitor=NoReport())  # type: ignore[arg-type]


def test_the_wsgi_middleware_with_minimal_components() -> None:
    from werkzeug.test import Client

    from coordination.integration import CoordinationMiddleware

    validator, handler, monitor = MinimalValidator(), MinimalHandler(), MinimalMonitor()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hello"]

    middleware = CoordinationMiddleware(
        app,
        {"expose_endpoints": True},
        validator=validator,
        error_handler=handler,
        performance_monitor=monitor,
    )
    client = Client(middleware)
    response = client.get("/hello")
    assert response.status_code == 200
    assert response.get_data() == b"hello"
    response.close()  # the request is timed until its body has been sent
    assert [success for _, success in monitor.durations] == [True]
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert b'coordination_total_operations{component="error_handler"}' in metrics.get_data()
    assert b'coordination_http_requests_total{component="http"' in metrics.get_data()
    health = client.get("/health")
    assert health.json is not None  # the health document, not the app's "hello"
    assert health.json["status"] == "pass"  # application/health+json
