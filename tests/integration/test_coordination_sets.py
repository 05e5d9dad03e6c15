"""Isolated sets (``Coordination``), ``coordination=`` on every door, and what a door's own
``config=`` means when its components are shared."""

from __future__ import annotations

import contextlib
import warnings
from typing import Any

import httpx
import pytest
from flask import Flask
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from werkzeug.test import Client

from coordination import (
    CircuitOpenError,
    ConfigError,
    Coordination,
    CoordinationASGIMiddleware,
    CoordinationConfig,
    CoordinationEventProcessor,
    CoordinationHealthChecker,
    CoordinationMetricsExporter,
    CoordinationMiddleware,
    CoordinationServiceWrapper,
    CoordinationValidator,
    EventDeadLettered,
    coordinate_operation,
    default_coordination,
    handle_errors,
    track_performance,
    validate_input,
)
from coordination.error_handling import default_error_handler
from coordination.integration._components import POLICY_OPTIONS, door_config, policy_overrides
from coordination.observability import StatusPage

pytestmark = pytest.mark.usefixtures("clean_environment")

FAST = {"base_delay": 0, "max_retries": 0}


def failing_app(coordination: Coordination, name: str) -> Flask:
    @coordination.handle_errors(operation_name=name, circuit_breaker_threshold=1, **FAST)
    def call() -> None:
        raise ConnectionError("down")

    app = Flask(name)

    @app.get("/call")
    def route() -> Any:
        try:
            call()
        except (ConnectionError, CircuitOpenError):
            return {"status": "failed"}, 502
        return {"status": "ok"}

    app.wsgi_app = coordination.wsgi(app.wsgi_app, {"expose_endpoints": True})  # type: ignore[method-assign]
    return app


# --- isolated sets ------------------------------------------------------------------------


def test_two_apps_in_one_process_keep_their_own_components() -> None:
    first, second = Coordination(), Coordination()
    one, two = Client(failing_app(first, "one.dep")), Client(failing_app(second, "two.dep"))
    assert one.get("/call", buffered=True).status_code == 502  # opens one.dep's breaker
    assert one.get("/health/ready", buffered=True).status_code == 503
    assert two.get("/health/ready", buffered=True).status_code == 200
    assert "one.dep" not in two.get("/metrics", buffered=True).get_data(as_text=True)
    assert set(first.error_handler.operation_stats()) == {"one.dep"}
    assert set(second.error_handler.operation_stats()) == {"two.dep"}
    assert second.error_handler.operation_stats()["two.dep"]["calls"] == 0
    # ... and the process's set saw neither.
    assert default_coordination().error_handler.operation_stats() == {}


def test_every_door_a_set_builds_uses_its_three_components() -> None:
    coordination = Coordination({"max_retries": 1})
    doors = [
        coordination.wsgi(Flask("x").wsgi_app),
        coordination.asgi(Starlette()),
        coordination.wrap(object()),
        coordination.event_processor(dead_letter_path=":memory:"),
        CoordinationMiddleware(Flask("y").wsgi_app, coordination=coordination),
        CoordinationASGIMiddleware(Starlette(), coordination=coordination),
        CoordinationServiceWrapper(object(), coordination=coordination),
        CoordinationEventProcessor(dead_letter_path=":memory:", coordination=coordination),
    ]
    for door in doors:
        assert door.validator is coordination.validator
        assert door.error_handler is coordination.error_handler
        assert door.performance_monitor is coordination.monitor
        assert door.config is coordination.config  # no config of its own: the set's
    expected = coordination.components()
    for reader in (
        coordination.health_checker(),
        coordination.metrics_exporter(),
        coordination.status_page(),
        CoordinationHealthChecker(coordination=coordination),
        CoordinationMetricsExporter(coordination=coordination),
        StatusPage(coordination=coordination),
    ):
        components = dict(reader.components)
        # An exporter also shows the set's middlewares (their requests), oldest first.
        names = ["http", "http_2", "http_3", "http_4"]
        middlewares = [components.pop(name) for name in names if name in components]
        # The exporter and the status page show the set's event processors (their stores).
        processors = [components.pop(name) for name in ("events", "events_2") if name in components]
        assert components == expected
        exporter = isinstance(reader, CoordinationMetricsExporter)
        assert middlewares == ([doors[0], doors[1], doors[4], doors[5]] if exporter else [])
        shows_events = exporter or isinstance(reader, StatusPage)
        assert processors == ([doors[3], doors[7]] if shows_events else [])


def test_decorators_bound_to_a_set_record_into_it_only() -> None:
    coordination = Coordination(FAST)

    @coordination.handle_errors
    def bare() -> int:
        return 1

    @coordination.track_performance("timed")
    def timed() -> int:
        return 2

    @coordination.validate_input({"required_fields": ["sku"]})
    def checked(order: dict[str, Any]) -> int:
        return 3

    @coordination.coordinate_operation(error_config={}, operation_name="combined")
    def combined() -> int:
        return 4

    @handle_errors(coordination=coordination, operation_name="by_keyword")
    def by_keyword() -> int:
        return 5

    @track_performance("timed_kw", coordination=coordination)
    def timed_kw() -> int:
        return 6

    @validate_input({"required_fields": ["x"]}, coordination=coordination)
    def checked_kw(x: int) -> int:
        return x

    @coordinate_operation(operation_name="combined_kw", error_config={}, coordination=coordination)
    def combined_kw() -> int:
        return 8

    results = [f() for f in (bare, timed, combined, by_keyword, timed_kw, combined_kw)]
    assert results == [1, 2, 4, 5, 6, 8]
    assert checked({"sku": "a"}) == 3
    assert checked_kw(7) == 7
    handled = set(coordination.error_handler.operation_stats())
    assert {"combined", "by_keyword", "combined_kw"} <= handled
    assert any(name.endswith("bare") for name in handled)
    timed_ops = set(coordination.monitor.operation_stats())
    assert {"timed", "timed_kw", "combined", "combined_kw"} <= timed_ops
    assert coordination.validator.get_health_status()["validations"] == 2
    process = default_coordination()
    assert process.error_handler.operation_stats() == {}
    assert process.monitor.operation_stats() == {}
    assert process.validator.get_health_status()["validations"] == 0


def test_a_component_and_a_set_together_is_a_mistake() -> None:
    coordination = Coordination()
    with pytest.raises(TypeError, match="not both"):
        handle_errors(handler=default_error_handler(), coordination=coordination)
    with pytest.raises(TypeError, match="not both"):
        validate_input({}, validator=CoordinationValidator(config={}), coordination=coordination)
    with pytest.raises(TypeError, match="not both"):
        CoordinationHealthChecker({"v": coordination.validator}, coordination=coordination)
    with pytest.raises(TypeError, match=r"must be a coordination\.Coordination"):
        handle_errors(coordination=object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"must be a coordination\.Coordination"):
        CoordinationMiddleware(Flask("z").wsgi_app, coordination=object())  # type: ignore[arg-type]


def test_repr_says_which_set_it_is() -> None:
    assert "process default" in repr(default_coordination())
    assert "process default" not in repr(Coordination())


# --- a door's own config -------------------------------------------------------------------


class Flaky:
    def __init__(self) -> None:
        self.calls = 0

    def fetch(self, key: str) -> str:
        self.calls += 1
        raise ConnectionError("down")


def test_a_doors_policy_keys_are_its_operations_defaults_under_their_error_config() -> None:
    assert default_error_handler().config.max_retries == 3  # the process's default
    service = Flaky()
    wrapper = CoordinationServiceWrapper(service, config={"max_retries": 1, "base_delay": 0})
    assert wrapper.error_handler is default_error_handler()  # still the shared handler
    fetch = wrapper.wrap_method("fetch")
    with pytest.raises(ConnectionError):
        fetch("k")
    assert service.calls == 2  # the door's max_retries, not the handler's 3
    other = Flaky()
    explicit = CoordinationServiceWrapper(other, config={"max_retries": 1, "base_delay": 0})
    with pytest.raises(ConnectionError):
        explicit.wrap_method("fetch", error_config={"max_retries": 2})("k")
    assert other.calls == 3  # the method's own error_config wins over the door's


def test_the_event_processors_policy_keys_apply_to_its_handlers() -> None:
    calls: list[str] = []

    def handler(event: Any, event_type: str) -> None:
        calls.append(event_type)
        raise ConnectionError("down")

    processor = CoordinationEventProcessor(
        handler, dead_letter_path=":memory:", config={"max_retries": 2, "base_delay": 0}
    )
    with pytest.raises(EventDeadLettered):
        processor.process_event({"id": 1}, "t")
    assert calls == ["t", "t", "t"]
    assert processor.error_handler is default_error_handler()


def test_coordinate_operations_policy_keys_are_defaults_under_error_config() -> None:
    calls: list[int] = []

    @coordinate_operation(error_config={}, operation_name="c", config={"max_retries": 1})
    def flaky() -> None:
        calls.append(1)
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        flaky()
    assert len(calls) == 2


@pytest.mark.parametrize(
    ("door", "key", "value"),
    [
        (
            lambda c: CoordinationMiddleware(Flask("a").wsgi_app, config=c),
            "validation_max_depth",
            3,
        ),
        (lambda c: CoordinationASGIMiddleware(Starlette(), config=c), "collection_interval", 0.5),
        (lambda c: CoordinationServiceWrapper(object(), config=c), "validation_fail_fast", True),
        (
            lambda c: CoordinationEventProcessor(dead_letter_path=":memory:", config=c),
            "redis_url",
            "redis://127.0.0.1:1/0",
        ),
        (lambda c: coordinate_operation(config=c), "error_rate_threshold", 0.5),
    ],
)
def test_a_door_cannot_reconfigure_a_component_it_shares(door: Any, key: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=key) as raised:
        door({key: value})
    message = str(raised.value)
    assert "shared" in message
    assert "Coordination(config=" in message
    assert raised.value.field == key
    # The same value as the shared component's is no conflict, and neither is a set of
    # its own with that setting.
    same = getattr(default_coordination().config, key)
    door({key: same})
    own = Coordination({key: value})
    assert getattr(own.config, key) == value


def test_a_whole_config_that_differs_in_a_component_key_is_refused_too() -> None:
    with pytest.raises(ConfigError, match="validation_max_items"):
        CoordinationMiddleware(
            Flask("b").wsgi_app, config=CoordinationConfig(validation_max_items=5)
        )
    # Its door keys alone are fine: the shared components have the same component keys.
    door = CoordinationMiddleware(Flask("c").wsgi_app, config=CoordinationConfig(debug=True))
    assert door.config.debug


def test_the_refusal_never_shows_a_urls_credentials() -> None:
    with pytest.raises(ConfigError) as raised:
        CoordinationEventProcessor(
            dead_letter_path=":memory:", config={"redis_url": "redis://user:s3cret@cache:6380/2"}
        )
    message = str(raised.value)
    assert "s3cret" not in message
    assert "user" not in message
    assert "s3cret" not in str(raised.value.value)
    assert "redis://[redacted]@cache:6380/2" in message


def test_components_given_one_by_one_are_not_judged() -> None:
    validator = CoordinationValidator(config={"validation_max_depth": 3})
    door = CoordinationMiddleware(
        Flask("d").wsgi_app, config={"validation_max_depth": 3}, validator=validator
    )
    assert door.validator is validator
    assert door.error_handler is default_error_handler()


def test_the_middlewares_redis_settings_are_its_client_rate_limits() -> None:
    # redis_url is the middleware's own key (its client rate limit), not the handler's.
    door = CoordinationMiddleware(Flask("e").wsgi_app, config={"redis_url": "redis://h:1/0"})
    assert door.config.redis_url == "redis://h:1/0"
    assert default_error_handler().config.redis_url is None


def test_door_keys_apply_to_the_door_only() -> None:
    rules = {"POST /orders": {"required_fields": ["sku"]}}

    async def orders(request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/orders", orders, methods=["POST"])])
    lax = CoordinationASGIMiddleware(app, config={"enable_validation": False}, route_rules=rules)
    strict = CoordinationASGIMiddleware(app, route_rules=rules)
    assert lax.validator is strict.validator  # shared; only the door's switch differs

    async def post(door: Any) -> int:
        transport = httpx.ASGITransport(app=door)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            return (await http.post("/orders", json={"qty": 1})).status_code

    import asyncio

    assert asyncio.run(post(lax)) == 200
    assert asyncio.run(post(strict)) == 422


def test_a_doors_own_keys_follow_the_environment_when_it_is_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = CoordinationServiceWrapper(object(), config={"max_retries": 1})
    assert before.config.enable_validation
    monkeypatch.setenv("COORDINATION_ENABLE_VALIDATION", "false")
    after = CoordinationServiceWrapper(object(), config={"max_retries": 1})
    assert not after.config.enable_validation  # no code change: the variable turns it off
    assert after.config.max_retries == 1
    assert after.validator is before.validator  # the shared components stay as they were


def test_a_doors_config_mapping_layers_over_its_sets_config() -> None:
    coordination = Coordination({"max_retries": 5, "health_details": True})
    door = coordination.wsgi(Flask("f").wsgi_app, {"expose_endpoints": True})
    assert door.config.expose_endpoints
    assert door.config.health_details  # from the set
    assert door.config.max_retries == 5  # from the set: no override of the handler
    assert door._operation_defaults == {}


_POLICY_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "max_retries": st.integers(0, 10),
    "base_delay": st.floats(0, 5),
    "backoff_multiplier": st.floats(1, 4),
    "max_delay": st.floats(0, 120),
    "jitter": st.sampled_from(["none", "full", "equal", "decorrelated"]),
    "retry_time_budget": st.none() | st.floats(0.1, 60),
    "retry_budget": st.none() | st.floats(0, 1),
    "retry_budget_window": st.floats(0.1, 600),
    "retry_budget_min_per_second": st.floats(0, 100),
    "timeout": st.none() | st.floats(0.1, 60),
    "timeout_workers": st.none() | st.integers(1, 8),
    "bulkhead_wait": st.floats(0, 5),
    "rate_limit_wait": st.floats(0, 5),
    "error_severity": st.sampled_from(["LOW", "MEDIUM", "HIGH", "CRITICAL"]),
    "max_concurrent": st.none() | st.integers(1, 100),
    "rate_limit": st.none() | st.sampled_from(["10/s", "5/m", "100/h", "10/1s;500/3600s"]),
    "circuit_breaker_threshold": st.integers(1, 50),
    "circuit_breaker_timeout": st.floats(0.1, 600),
    "half_open_calls": st.integers(1, 10),
    "half_open_max_wait": st.none() | st.floats(0.1, 60),
    "open_backoff_multiplier": st.floats(1, 4),
    "max_open_seconds": st.none() | st.floats(0.1, 600),
    "breaker_mode": st.sampled_from(["normal", "metrics_only", "disabled"]),
    "failure_rate_threshold": st.none() | st.floats(0.01, 1),
    "slow_call_duration": st.none() | st.floats(0.1, 60),
    "slow_call_rate_threshold": st.none() | st.floats(0.01, 1),
    "window_type": st.sampled_from(["count", "time"]),
    "window_size": st.integers(1, 500),
    "minimum_calls": st.integers(1, 50),
    "trip_on": st.none() | st.sampled_from([("builtins.ConnectionError",), ("builtins.OSError",)]),
    "breaker_ignores": st.none() | st.just(("builtins.LookupError",)),
    "hedge_after": st.none() | st.sampled_from(["0.05", "p95", "p99"]),
    "max_hedged_attempts": st.integers(1, 10),
    "adaptive_concurrency": st.booleans(),
    "concurrency_algorithm": st.sampled_from(["gradient2", "vegas", "aimd"]),
    "min_concurrency": st.integers(1, 20),
    "max_concurrency": st.integers(1, 400),
    "concurrency_group": st.none() | st.sampled_from(["orders-db", "search"]),
}


@given(st.fixed_dictionaries({}, optional=_POLICY_VALUES))
def test_policy_keys_become_exactly_the_options_that_differ(mapping: dict[str, Any]) -> None:
    assert set(_POLICY_VALUES) == set(POLICY_OPTIONS)
    base = CoordinationConfig()
    try:
        config, named = door_config(base, mapping)
    except ConfigError:
        return  # a combination the configuration refuses, with a message: fine
    assert named == frozenset(mapping)
    overrides = policy_overrides(config, named, base)
    expected = {
        POLICY_OPTIONS[key]: value
        for key, value in mapping.items()
        if getattr(config, key) != getattr(base, key)
    }
    assert overrides == expected
    # Whatever they are, the handler accepts them as per-operation options.
    default_error_handler().config_options(**overrides)


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=20),
        st.none() | st.integers() | st.text(max_size=10) | st.booleans(),
        max_size=4,
    )
)
def test_any_door_config_mapping_is_accepted_or_a_config_error(mapping: dict[str, Any]) -> None:
    # an old spelling (Hypothesis draws the module's own strings, "operation_timeout" too)
    # is accepted with its DeprecationWarning: that is "accepted"
    with contextlib.suppress(ConfigError), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        CoordinationServiceWrapper(object(), config=mapping)
