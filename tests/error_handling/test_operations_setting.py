"""The configuration's ``operations:`` entries reach every plan the handler builds.

Precedence, lowest first: the settings < ``operations[name]`` < the options the code gives
for the operation (decorator, call, a door's ``error_config``).
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordination import CoordinationConfig, EventDeadLettered, RateLimitExceeded
from coordination._errors import ConfigError
from coordination.error_handling import CoordinationErrorHandler, handle_errors
from fakes import FakeClock

pytestmark = pytest.mark.usefixtures("clean_environment")


def make(clock: FakeClock, **config: Any) -> CoordinationErrorHandler:
    config.setdefault("jitter", "none")
    return CoordinationErrorHandler(
        CoordinationConfig(**config), clock=clock, sleep=clock.sleep, async_sleep=clock.async_sleep
    )


def failing(calls: list[int]) -> Callable[[], None]:
    def down() -> None:
        calls.append(1)
        raise ConnectionError("down")

    return down


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def payments(clock: FakeClock) -> Iterator[CoordinationErrorHandler]:
    handler = make(
        clock,
        max_retries=3,
        base_delay=1.0,
        operations={"payments": {"max_retries": 1, "base_delay": 0.25}},
    )
    yield handler
    handler.close()


# --- every way in ---------------------------------------------------------------------


def test_execute_with_error_handling_uses_the_entry(
    payments: CoordinationErrorHandler, clock: FakeClock
) -> None:
    calls: list[int] = []
    with pytest.raises(ConnectionError):
        payments.execute_with_error_handling(failing(calls), operation_name="payments")
    assert len(calls) == 2  # the entry's max_retries = 1
    assert clock.sleeps == [0.25]
    calls.clear()
    with pytest.raises(ConnectionError):
        payments.execute_with_error_handling(failing(calls), operation_name="other")
    assert len(calls) == 4  # the settings' max_retries = 3 elsewhere


def test_the_calls_own_options_win_over_the_entry(payments: CoordinationErrorHandler) -> None:
    calls: list[int] = []
    with pytest.raises(ConnectionError):
        payments.execute_with_error_handling(
            failing(calls), operation_name="payments", max_retries=0
        )
    assert len(calls) == 1


def test_a_decorator_uses_the_entry_under_its_own_options(
    payments: CoordinationErrorHandler, clock: FakeClock
) -> None:
    calls: list[int] = []

    @handle_errors(handler=payments, operation_name="payments")
    def charge() -> None:
        failing(calls)()

    @handle_errors(handler=payments, operation_name="payments", base_delay=2.0)
    def refund() -> None:
        failing(calls)()

    with pytest.raises(ConnectionError):
        charge()
    with pytest.raises(ConnectionError):
        refund()
    assert len(calls) == 4
    assert clock.sleeps == [0.25, 2.0]  # the entry's base_delay, then the decorator's


def test_a_functions_qualified_name_is_its_entry(clock: FakeClock) -> None:
    calls: list[int] = []

    def charge() -> None:
        failing(calls)()

    handler = make(clock, base_delay=0, operations={charge.__qualname__: {"max_retries": 0}})
    with pytest.raises(ConnectionError):
        handler.decorate(charge)()
    assert len(calls) == 1


def test_async_calls_use_the_entry(payments: CoordinationErrorHandler) -> None:
    calls: list[int] = []

    async def down() -> None:
        calls.append(1)
        raise ConnectionError("down")

    decorated = handle_errors(handler=payments, operation_name="payments")(down)

    async def main() -> None:
        with pytest.raises(ConnectionError):
            await decorated()
        with pytest.raises(ConnectionError):
            await payments.aexecute_with_error_handling(down, operation_name="payments")

    asyncio.run(main())
    assert len(calls) == 4


def test_the_breaker_of_an_entry_is_made_with_its_options(clock: FakeClock) -> None:
    handler = make(
        clock,
        circuit_breaker_threshold=9,
        operations={"payments": {"circuit_breaker_threshold": 2, "window_size": 7}},
    )
    # looked up before any call: made from the entry, not from the defaults
    assert handler.circuit_breaker("payments").settings.failure_threshold == 2
    assert handler.circuit_breaker("payments").settings.window_size == 7
    assert handler.circuit_breaker("search").settings.failure_threshold == 9


def test_a_rate_limit_per_entry(clock: FakeClock) -> None:
    handler = make(clock, operations={"search": {"rate_limit": "2/s"}})
    for _ in range(2):
        handler.execute_with_error_handling(len, args=("x",), operation_name="search")
    with pytest.raises(RateLimitExceeded):
        handler.execute_with_error_handling(len, args=("x",), operation_name="search")
    for _ in range(5):  # other operations are not limited
        handler.execute_with_error_handling(len, args=("x",), operation_name="other")


def test_none_from_code_keeps_its_per_call_meaning(clock: FakeClock) -> None:
    handler = make(
        clock,
        max_retries=3,
        base_delay=0,
        operations={"payments": {"max_retries": 1, "timeout": 5.0}},
    )
    calls: list[int] = []
    # None for max_retries: "the configuration's", which for this operation is the entry's
    decorated = handler.decorate(failing(calls), operation_name="payments", max_retries=None)
    with pytest.raises(ConnectionError):
        decorated()
    assert len(calls) == 2
    # None for timeout: "no timeout", over the entry's
    assert handler.plan("payments", {"timeout": None}).options.timeout is None
    assert handler.plan("payments", {}).options.timeout == 5.0


def test_code_only_options_in_an_entry_given_in_code(clock: FakeClock) -> None:
    calls: list[int] = []
    handler = make(
        clock,
        base_delay=0,
        operations={"payments": {"retry_on": (TimeoutError,), "fallback": "cached"}},
    )
    assert handler.execute_with_error_handling(failing(calls), operation_name="payments") == (
        "cached"
    )
    assert len(calls) == 1  # ConnectionError is not retried for this operation


def test_the_handler_checks_what_code_gave_when_it_is_made(clock: FakeClock) -> None:
    config = CoordinationConfig(operations={"payments": {"retry_on": 3}})
    with pytest.raises(ConfigError, match=r"invalid retry_on = 3.*configuration's operations"):
        CoordinationErrorHandler(config)
    config = CoordinationConfig(operations={"payments": {"retyr_on": ValueError}})
    with pytest.raises(ConfigError, match=r"did you mean 'retry_on'.*operations.payments"):
        CoordinationErrorHandler(config)
    config = CoordinationConfig(operations={"payments": {"operation_name": "x"}})
    with pytest.raises(ConfigError, match="the entry's key is the operation's name"):
        CoordinationErrorHandler(config)


def test_a_file_reaches_the_handler(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "coordination.yaml"
    path.write_text("operations:\n  payments:\n    max_retries: 0\n", encoding="utf-8")
    handler = CoordinationErrorHandler(
        CoordinationConfig.load(path), clock=clock, sleep=clock.sleep
    )
    calls: list[int] = []
    with pytest.raises(ConnectionError):
        handler.execute_with_error_handling(failing(calls), operation_name="payments")
    assert len(calls) == 1


# --- the doors ------------------------------------------------------------------------


def test_the_event_processor_uses_the_entry_of_its_event_type() -> None:
    from coordination.integration import CoordinationEventProcessor

    handler = CoordinationErrorHandler(
        CoordinationConfig(base_delay=0, operations={"event_order": {"max_retries": 0}}),
        sleep=lambda s: None,
    )
    calls: list[int] = []

    def on_order(event: Any, event_type: str) -> None:
        failing(calls)()

    with CoordinationEventProcessor(
        on_order, error_handler=handler, dead_letter_path=":memory:"
    ) as processor:
        with pytest.raises(EventDeadLettered):
            processor.process_event({"id": 1}, "order")
    assert len(calls) == 1  # not the settings' 3 retries


def test_the_service_wrapper_uses_the_entry_of_the_method(clock: FakeClock) -> None:
    from coordination.integration import CoordinationServiceWrapper

    class Service:
        def __init__(self) -> None:
            self.calls: list[int] = []

        def charge(self) -> None:
            failing(self.calls)()

    handler = make(clock, base_delay=0, operations={"charge": {"max_retries": 0}})
    service = Service()
    wrapper = CoordinationServiceWrapper(service, error_handler=handler)
    with pytest.raises(ConnectionError):
        wrapper.wrap_method("charge", error_config={})()
    assert len(service.calls) == 1


def test_coordinate_operation_is_protected_when_the_operator_configured_it(
    clock: FakeClock,
) -> None:
    from coordination.integration import coordinate_operation

    handler = make(clock, base_delay=0, operations={"checkout": {"max_retries": 2}})
    calls: list[int] = []

    @coordinate_operation(operation_name="checkout", error_handler=handler)
    def checkout() -> None:
        failing(calls)()

    @coordinate_operation(operation_name="browse", error_handler=handler)
    def browse() -> None:
        failing(calls)()

    with pytest.raises(ConnectionError):
        checkout()
    assert len(calls) == 3
    calls.clear()
    with pytest.raises(ConnectionError):
        browse()  # no error_config, no entry: no error handling, as before
    assert len(calls) == 1


def test_a_door_cannot_give_the_shared_handler_other_entries(clock: FakeClock) -> None:
    from coordination import Coordination
    from coordination.integration import CoordinationServiceWrapper

    shop = Coordination(config=CoordinationConfig(operations={"charge": {"max_retries": 1}}))
    try:
        with pytest.raises(ConfigError, match=r"operations = .*shared error_handler"):
            CoordinationServiceWrapper(
                object(),
                coordination=shop,
                config={"operations": {"charge": {"max_retries": 5}}},
            )
        # the same entries are no reconfiguration
        CoordinationServiceWrapper(
            object(), coordination=shop, config={"operations": {"charge": {"max_retries": 1}}}
        )
    finally:
        shop.close()


# --- the precedence, as a property ------------------------------------------------------

RETRIES = st.one_of(st.none(), st.integers(min_value=0, max_value=3))


@settings(max_examples=60, deadline=None)
@given(base=RETRIES, entry=RETRIES, call=RETRIES, decorated=st.booleans())
def test_the_closest_layer_that_sets_max_retries_wins(
    base: int | None, entry: int | None, call: int | None, decorated: bool
) -> None:
    config: dict[str, Any] = {"base_delay": 0}
    if base is not None:
        config["max_retries"] = base
    if entry is not None:
        config["operations"] = {"op": {"max_retries": entry}}
    handler = CoordinationErrorHandler(CoordinationConfig(**config), sleep=lambda s: None)
    calls: list[int] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        if decorated:
            run = handler.decorate(failing(calls), operation_name="op", max_retries=call)
            with pytest.raises(ConnectionError):
                run()
        else:
            with pytest.raises(ConnectionError):
                handler.execute_with_error_handling(
                    failing(calls), operation_name="op", max_retries=call
                )
    expected = next(v for v in (call, entry, base, 3) if v is not None)
    assert len(calls) == expected + 1
