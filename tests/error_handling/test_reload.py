"""Live reload of a handler: new settings at the next call, breakers kept, nothing mixed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coordination import (
    CircuitOpenError,
    ConfigError,
    CoordinationConfig,
    OperationTimeout,
    RateLimitExceeded,
)
from coordination.error_handling import CircuitState, CoordinationErrorHandler
from fakes import FakeClock

pytestmark = pytest.mark.usefixtures("clean_environment")


def make(clock: FakeClock, **config: Any) -> CoordinationErrorHandler:
    return CoordinationErrorHandler(
        base_config(**config), clock=clock, sleep=clock.sleep, async_sleep=clock.async_sleep
    )


def base_config(**config: Any) -> CoordinationConfig:
    config.setdefault("jitter", "none")
    config.setdefault("base_delay", 0)
    return CoordinationConfig(**config)


class Flaky:
    """Fails while ``failing``; counts its attempts."""

    def __init__(self) -> None:
        self.attempts = 0
        self.failing = True

    def __call__(self, value: int = 0) -> int:
        self.attempts += 1
        if self.failing:
            raise ConnectionError("down")
        return value

    def attempts_of(self, call: Any) -> int:
        before = self.attempts
        with contextlib.suppress(ConnectionError, CircuitOpenError):
            call()
        return self.attempts - before


def test_a_decorated_function_takes_the_new_retries_at_its_next_call(clock: FakeClock) -> None:
    handler = make(clock, max_retries=1, circuit_breaker_threshold=1000)
    dependency = Flaky()
    fetch = handler.decorate(dependency, operation_name="fetch")
    assert dependency.attempts_of(fetch) == 2
    handler.reconfigure(base_config(max_retries=4, circuit_breaker_threshold=1000))
    assert dependency.attempts_of(fetch) == 5
    dependency.failing = False
    assert fetch(7) == 7


def test_the_operations_entry_of_the_new_configuration_reaches_the_function(
    clock: FakeClock,
) -> None:
    handler = make(clock, max_retries=0, circuit_breaker_threshold=1000)
    dependency = Flaky()
    fetch = handler.decorate(dependency, operation_name="fetch")
    assert dependency.attempts_of(fetch) == 1
    new = base_config(
        max_retries=0, circuit_breaker_threshold=1000, operations={"fetch": {"max_retries": 2}}
    )
    handler.reconfigure(new)
    assert dependency.attempts_of(fetch) == 3


def test_options_the_code_gives_still_win_over_a_reloaded_file(clock: FakeClock) -> None:
    handler = make(clock, circuit_breaker_threshold=1000)
    dependency = Flaky()
    fetch = handler.decorate(dependency, operation_name="fetch", max_retries=1)
    handler.reconfigure(base_config(max_retries=5, circuit_breaker_threshold=1000))
    assert dependency.attempts_of(fetch) == 2


def test_the_breaker_keeps_its_state_and_takes_the_new_threshold(clock: FakeClock) -> None:
    handler = make(clock, max_retries=0, circuit_breaker_threshold=5)
    dependency = Flaky()
    fetch = handler.decorate(dependency, operation_name="fetch")
    for _ in range(3):
        dependency.attempts_of(fetch)
    breaker = handler.circuit_breaker("fetch")
    handler.reconfigure(base_config(max_retries=0, circuit_breaker_threshold=4))
    assert handler.circuit_breaker("fetch") is breaker  # same kind: kept
    assert breaker.snapshot().consecutive_failures == 3
    dependency.attempts_of(fetch)  # the 4th consecutive failure opens at the new threshold
    assert breaker.state is CircuitState.OPEN
    handler.reconfigure(base_config(max_retries=0, circuit_breaker_threshold=50))
    assert breaker.state is CircuitState.OPEN  # an open breaker stays open
    with pytest.raises(CircuitOpenError):
        fetch()


def test_another_kind_of_breaker_is_a_new_one_and_says_so(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    handler = make(clock, max_retries=0, circuit_breaker_threshold=2)
    dependency = Flaky()
    fetch = handler.decorate(dependency, operation_name="fetch")
    dependency.attempts_of(fetch)
    dependency.attempts_of(fetch)
    old = handler.circuit_breaker("fetch")
    assert old.state is CircuitState.OPEN
    with caplog.at_level(logging.WARNING, logger="coordination.error_handling"):
        handler.reconfigure(base_config(max_retries=0, failure_rate_threshold=0.5, window_size=10))
    new = handler.circuit_breaker("fetch")
    assert new is not old
    assert new.state is CircuitState.CLOSED
    assert "a new circuit breaker" in caplog.text
    dependency.failing = False
    assert fetch(3) == 3  # the function's guard was diverted to the new breaker's pipeline
    assert new.snapshot().window_calls == 1


def test_a_timeout_added_by_a_reload_bounds_a_function_on_the_closed_path() -> None:
    handler = CoordinationErrorHandler(base_config(max_retries=0))

    def slow() -> str:
        time.sleep(0.3)
        return "late"

    fetch = handler.decorate(slow, operation_name="slow")
    assert fetch() == "late"
    handler.reconfigure(base_config(max_retries=0, operations={"slow": {"timeout": 0.05}}))
    with pytest.raises(OperationTimeout):
        fetch()
    handler.reconfigure(base_config(max_retries=0))  # the first shape again: the guard
    assert fetch() == "late"
    (runner,) = [r for r, _ in handler._tracked_runners()]
    assert runner.redirect is None
    handler.close()


def test_a_rate_limit_added_and_changed_by_reloads(clock: FakeClock) -> None:
    handler = make(clock)
    fetch = handler.decorate(lambda: "ok", operation_name="limited")
    for _ in range(5):
        assert fetch() == "ok"
    handler.reconfigure(base_config(operations={"limited": {"rate_limit": "2/s"}}))
    assert fetch() == "ok"
    assert fetch() == "ok"
    with pytest.raises(RateLimitExceeded):
        fetch()
    limiter = handler._existing("limited").limiter
    # another option changes: the limiter (and its spent tokens) stays
    handler.reconfigure(
        base_config(operations={"limited": {"rate_limit": "2/s", "max_retries": 1}})
    )
    assert handler._existing("limited").limiter is limiter
    with pytest.raises(RateLimitExceeded):
        fetch()
    handler.reconfigure(base_config(operations={"limited": {"rate_limit": "100/s"}}))
    assert fetch() == "ok"


def test_execute_with_error_handling_takes_the_new_values(clock: FakeClock) -> None:
    handler = make(clock, max_retries=0, circuit_breaker_threshold=1000)
    dependency = Flaky()

    def call() -> Any:
        return handler.execute_with_error_handling(dependency, operation_name="op")

    assert dependency.attempts_of(call) == 1
    handler.reconfigure(base_config(max_retries=2, circuit_breaker_threshold=1000))
    assert dependency.attempts_of(call) == 3


def test_an_async_function_takes_the_new_values_and_a_new_timeout() -> None:
    handler = CoordinationErrorHandler(base_config(max_retries=0, circuit_breaker_threshold=99))
    attempts = []

    async def dependency(stall: float) -> str:
        attempts.append(stall)
        await asyncio.sleep(stall)
        if stall == 0:
            raise ConnectionError("down")
        return "done"

    fetch = handler.decorate(dependency, operation_name="adep")

    async def scenario() -> None:
        with pytest.raises(ConnectionError):
            await fetch(0)
        assert len(attempts) == 1
        handler.reconfigure(
            base_config(
                max_retries=2,
                circuit_breaker_threshold=99,
                operations={"adep": {"timeout": 0.05}},
            )
        )
        attempts.clear()
        with pytest.raises(ConnectionError):
            await fetch(0)
        assert len(attempts) == 3
        with pytest.raises(OperationTimeout):
            await fetch(1.0)

    asyncio.run(scenario())


def test_a_configuration_that_does_not_check_changes_nothing(clock: FakeClock) -> None:
    handler = make(clock, max_retries=1, circuit_breaker_threshold=1000)
    dependency = Flaky()
    fetch = handler.decorate(dependency, operation_name="fetch")
    config = handler.config
    bad = base_config(max_retries=3).replace(
        operations={"fetch": {"retry_on": ["no.such.module.Error"]}}
    )
    with pytest.raises(ConfigError):
        handler.reconfigure(bad, source="test")
    assert handler.config is config
    assert dependency.attempts_of(fetch) == 2
    reloads = handler.snapshot().reloads
    assert reloads is not None
    assert (reloads.reloads, reloads.errors) == (0, 1)
    assert reloads.last_error is not None
    assert "no.such.module" in str(reloads.last_error.error)


# --- never a mix ----------------------------------------------------------------------------

_VALID = st.fixed_dictionaries(
    {
        "max_retries": st.integers(0, 4),
        "circuit_breaker_threshold": st.integers(1, 20),
        "timeout": st.none() | st.sampled_from([5.0, 10.0]),
        "rate_limit": st.none() | st.sampled_from(["1000/s", "50/s"]),
        "max_concurrent": st.none() | st.integers(1, 8),
        "failure_rate_threshold": st.none() | st.sampled_from([0.5, 0.9]),
    }
)
_INVALID = st.sampled_from(
    [
        {"retry_on": ["no.such.Thing"]},
        {"trip_on": ["builtins.NotAThing"]},
        {"breaker_ignores": ["no.such.module.Error"]},
    ]
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.booleans(), _VALID, _INVALID), min_size=1, max_size=6))
def test_reloads_of_random_configurations_never_leave_a_mix(
    steps: list[tuple[bool, dict[str, Any], dict[str, Any]]],
) -> None:
    handler = CoordinationErrorHandler(base_config())
    functions = {
        name: handler.decorate(lambda name=name: name, operation_name=name)
        for name in ("a", "b", "c")
    }
    handler.execute_with_error_handling(len, args=("x",), operation_name="d")
    good = handler.config
    for valid, entry, bad in steps:
        operations = {"a": dict(entry), "b": {"max_retries": entry["max_retries"]}}
        if not valid:
            operations["c"] = bad
        config = base_config().replace(operations=operations)
        try:
            handler.reconfigure(config)
        except ConfigError:
            assert not valid
        else:
            assert valid
            good = config
        assert handler.config is good
        for runner, (name, overrides) in handler._tracked_runners():
            expected = handler.config_options(**good.operations.get(name, {}), **overrides)
            assert runner.plan.options == expected
            op = handler._existing(name)
            assert runner.plan.op is op
            assert op.breaker.settings == expected.breaker
            assert (op.bulkhead.max_concurrent if op.bulkhead else None) == (
                expected.max_concurrent
            )
            assert (op.limiter is None) == (expected.rate_limit is None)
            assert handler._made_with[name] == expected
    for name, function in functions.items():
        assert function() == name
    handler.close()


@pytest.mark.parametrize("mode", ["metrics_only", "disabled"])
def test_a_breaker_mode_guard_is_diverted_too(clock: FakeClock, mode: str) -> None:
    handler = make(clock, breaker_mode=mode)
    fetch = handler.decorate(lambda: "ok", operation_name="moded")
    assert fetch() == "ok"
    handler.reconfigure(base_config(breaker_mode=mode, operations={"moded": {"rate_limit": "1/s"}}))
    assert fetch() == "ok"
    with pytest.raises(RateLimitExceeded):
        fetch()
    handler.reconfigure(base_config(breaker_mode=mode))
    assert [fetch() for _ in range(3)] == ["ok"] * 3


def test_calls_running_while_reloads_flip_see_one_configuration_each() -> None:
    """Every call is made under the old settings or the new ones, never a mix."""
    handler = CoordinationErrorHandler(base_config(circuit_breaker_threshold=10**6))
    one = base_config(max_retries=1, circuit_breaker_threshold=10**6)
    three = base_config(max_retries=3, circuit_breaker_threshold=10**6)
    local = threading.local()

    def dependency() -> None:
        local.attempts += 1
        raise ConnectionError("down")

    fetch = handler.decorate(dependency, operation_name="flip")
    seen: set[int] = set()
    stop = threading.Event()

    def caller() -> None:
        while not stop.is_set():
            local.attempts = 0
            with contextlib.suppress(ConnectionError):
                fetch()
            seen.add(local.attempts)

    threads = [threading.Thread(target=caller) for _ in range(3)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    index = 0
    # at least 200 flips, and until calls under both settings were seen (the callers
    # need the GIL too: a short sleep between flips lets them run)
    while index < 200 or (not {2, 4} <= seen and time.monotonic() < deadline):
        handler.reconfigure(three if index % 2 else one)
        index += 1
        time.sleep(0.0005)
    stop.set()
    for thread in threads:
        thread.join()
    assert seen == {2, 4}  # max_retries 1 or 3 (the default, before the first reload: 3)


def test_a_budget_added_by_a_reload_reads_the_live_operations_calls() -> None:
    # The budget a reload makes must count the calls of the operation that keeps them
    # (its counters stay on the live operation): with no floor, a budget reading the
    # counters of the components' scratch operation would see no call and allow nothing.
    clock = FakeClock()
    handler = make(clock, max_retries=1, circuit_breaker_threshold=10_000)
    dependency = Flaky()
    dependency.failing = False
    call = handler.decorate(dependency, operation_name="stock")
    for _ in range(100):
        call()
    handler.reconfigure(
        base_config(
            max_retries=1,
            circuit_breaker_threshold=10_000,
            retry_budget=0.2,
            retry_budget_min_per_second=0,
        ),
        source="test",
    )
    dependency.failing = True
    retried = sum(dependency.attempts_of(call) - 1 for _ in range(40))
    # the calls counted from the budget's first ask (the pull design) earn 20 % of them
    assert 4 <= retried <= 8


def test_a_reload_that_adds_hedging_hedges_the_next_call_and_one_that_removes_it_stops() -> None:
    # hedge_after changes the pipeline's shape (no closed fast path): the decorated
    # function is diverted to a new wrapper, and back when hedging is removed.
    release = threading.Event()
    first = [True]

    def read() -> str:
        if first[0]:
            first[0] = False
            release.wait(2)  # the first attempt stalls; a hedge answers for it
            return "late"
        return "hedge"

    handler = CoordinationErrorHandler(base_config())
    call = handler.decorate(read, operation_name="catalogue")
    handler.reconfigure(base_config(hedge_after=0.01), source="test")
    try:
        assert call() == "hedge"
    finally:
        release.set()
    assert handler.operation_stats()["catalogue"]["hedge_wins"] == 1
    handler.reconfigure(base_config(), source="test")
    first[0] = True
    release.clear()
    threading.Timer(0.05, release.set).start()
    assert call() == "late"  # no hedge: the caller waited for its one attempt
    assert handler.operation_stats()["catalogue"]["hedged_attempts"] == 1
    handler.close()
