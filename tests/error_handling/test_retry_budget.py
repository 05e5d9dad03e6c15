"""The retry budget in memory: the issue's 500 calls, the window arithmetic, the wiring."""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from coordination import ConfigError, CoordinationConfig
from coordination.error_handling import CoordinationErrorHandler
from coordination.error_handling._retry_budget import BudgetSettings, RetryBudget
from coordination.observability import CoordinationMetricsExporter
from observability.exposition import value


class Clock:
    """A clock the test moves; sleeps move it too (nothing really waits)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    async def async_sleep(self, seconds: float) -> None:
        self.now += seconds


def handler_on(clock: Clock, **config: Any) -> CoordinationErrorHandler:
    return CoordinationErrorHandler(
        {"base_delay": 0, "circuit_breaker_threshold": 1_000_000, **config},
        clock=clock,
        sleep=clock.sleep,
        async_sleep=clock.async_sleep,
    )


class Down:
    """An always-failing dependency that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1
        raise ConnectionError("down")

    async def acall(self) -> None:
        self.calls += 1
        raise ConnectionError("down")


# --- the test --------------------------------------------------------------------


@pytest.mark.parametrize("spread", [0.0, 0.004])  # all at once, or 500 calls over 2 s
def test_500_calls_against_an_always_failing_dependency_make_20_percent_plus_floor(
    spread: float,
) -> None:
    clock = Clock()
    handler = handler_on(clock)
    down = Down()
    call = handler.decorate(down, max_retries=3, retry_budget=0.2, operation_name="dep")
    for _ in range(500):
        clock.now += spread
        with pytest.raises(ConnectionError):
            call()
    retries = handler.operation_stats()["dep"]["retries"]
    # 20 % of 500 calls plus the floor's 10/s × 10 s, not 1 500
    assert down.calls == 500 + retries
    assert 150 <= retries <= 0.2 * 500 + 10 * 10
    assert handler.operation_stats()["dep"]["retry_budget_exhausted"] >= 500 - retries


def test_the_same_for_coroutine_functions_and_no_floor() -> None:
    clock = Clock()
    handler = handler_on(clock)
    down = Down()
    call = handler.decorate(
        down.acall,
        max_retries=3,
        retry_budget=0.2,
        retry_budget_min_per_second=0,
        operation_name="dep",
    )

    async def main() -> None:
        for _ in range(500):
            clock.now += 0.01
            with pytest.raises(ConnectionError):
                await call()

    asyncio.run(main())
    retries = handler.operation_stats()["dep"]["retries"]
    assert 90 <= retries <= 100  # 20 % of the calls in each 10 s window, no floor
    assert down.calls == 500 + retries


def test_without_a_budget_every_retry_is_made() -> None:
    clock = Clock()
    handler = handler_on(clock)
    down = Down()
    call = handler.decorate(down, max_retries=3, operation_name="dep")
    for _ in range(50):
        with pytest.raises(ConnectionError):
            call()
    assert down.calls == 200
    assert handler.operation_stats()["dep"]["retry_budget_exhausted"] == 0


def test_a_quiet_operation_retries_on_the_floor_and_the_window_forgets() -> None:
    clock = Clock()
    handler = handler_on(clock)
    down = Down()
    call = handler.decorate(
        down,
        max_retries=1,
        retry_budget=0.0,
        retry_budget_window=2.0,
        retry_budget_min_per_second=2.0,
        operation_name="dep",
    )
    for _ in range(10):
        with pytest.raises(ConnectionError):
            call()
    assert handler.operation_stats()["dep"]["retries"] == 4  # 2/s × 2 s
    clock.now += 2.5  # a window and more later: the budget is whole again
    for _ in range(10):
        with pytest.raises(ConnectionError):
            call()
    assert handler.operation_stats()["dep"]["retries"] == 8


# --- what a refused retry looks like -----------------------------------------------------


def test_a_refused_retry_raises_the_original_error_with_a_note_counted_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    handler = handler_on(clock)
    down = Down()
    call = handler.decorate(
        down,
        max_retries=3,
        retry_budget=0.0,
        retry_budget_min_per_second=0.1,  # one retry per 10 s window
        operation_name="dep",
    )
    with pytest.raises(ConnectionError):
        call()
    assert down.calls == 2  # the first call's one retry, then the budget is spent
    with caplog.at_level(logging.WARNING, logger="coordination.error_handling"):
        for _ in range(5):
            with pytest.raises(ConnectionError) as raised:
                call()
    assert down.calls == 2 + 5  # raised at once: no retry
    assert raised.value.__notes__ == [
        "coordination: operation 'dep' failed after 1 attempt(s); not retried: the retry "
        "budget (0% of calls over 10 s + 0.1/s) is spent"
    ]
    warnings = [r for r in caplog.records if "retry budget spent" in r.getMessage()]
    assert len(warnings) == 1  # at most once per window
    stats = handler.operation_stats()["dep"]
    assert (stats["retry_budget_exhausted"], stats["failures"]) == (6, 6)

    exporter = CoordinationMetricsExporter({"h": handler})
    text = exporter.export_metrics()
    assert (
        value(text, "coordination_retry_budget_exhausted_total", component="h", operation="dep")
        == 6
    )


def test_a_refused_retry_still_ends_in_the_fallback() -> None:
    clock = Clock()
    handler = handler_on(clock)
    down = Down()
    call = handler.decorate(
        down,
        max_retries=3,
        retry_budget=0.0,
        retry_budget_min_per_second=0,
        fallback="cached",
        operation_name="dep",
    )
    assert call() == "cached"
    assert down.calls == 1
    assert handler.operation_stats()["dep"]["fallbacks"] == 1


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_retries_asked_by_a_result_spend_the_budget_too(kind: str) -> None:
    clock = Clock()
    handler = handler_on(clock)
    made = 0

    def busy() -> str:
        nonlocal made
        made += 1
        return "busy"

    async def abusy() -> str:
        return busy()

    call: Any = handler.decorate(
        busy if kind == "sync" else abusy,
        max_retries=3,
        retry_if_result=lambda result: result == "busy",
        retry_budget=0.0,
        retry_budget_min_per_second=0.2,  # two retries per 10 s window
        operation_name="dep",
    )
    for _ in range(3):
        result = call() if kind == "sync" else asyncio.run(call())
        assert result == "busy"  # the last result, as it is, once no retry is allowed
    assert made == 3 + 2
    assert handler.operation_stats()["dep"]["retry_budget_exhausted"] == 3


def test_operations_do_not_share_a_budget() -> None:
    clock = Clock()
    handler = handler_on(clock, retry_budget=0.0, retry_budget_min_per_second=0.1)
    first, second = Down(), Down()
    a = handler.decorate(first, max_retries=3, operation_name="a")
    b = handler.decorate(second, max_retries=3, operation_name="b")
    for call in (a, a, b, b):
        with pytest.raises(ConnectionError):
            call()
    assert (first.calls, second.calls) == (3, 3)  # one retry each


def test_the_budget_comes_from_configuration_and_operations() -> None:
    clock = Clock()
    handler = handler_on(
        clock,
        operations={"dep": {"retry_budget": 0.0, "retry_budget_min_per_second": 0.1}},
    )
    down = Down()
    call = handler.decorate(down, max_retries=3, operation_name="dep")
    for _ in range(3):
        with pytest.raises(ConnectionError):
            call()
    assert down.calls == 3 + 1


# --- bad settings ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "bad"),
    [
        ("retry_budget", 1.5),
        ("retry_budget", -0.1),
        ("retry_budget", "lots"),
        ("retry_budget_window", 0),
        ("retry_budget_window", -3),
        ("retry_budget_min_per_second", -1),
    ],
)
def test_bad_settings_are_a_config_error_naming_them(setting: str, bad: Any) -> None:
    with pytest.raises(ConfigError, match=setting):
        CoordinationConfig(**{setting: bad})
    handler = CoordinationErrorHandler({"base_delay": 0})
    with pytest.raises(ConfigError, match=setting):
        handler.decorate(lambda: None, **{"retry_budget": 0.2, setting: bad})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"ratio": math.nan},
        {"ratio": 0.2, "window": math.inf},
        {"ratio": 0.2, "min_per_second": math.inf},
        {"ratio": 0.2, "slices": 0},
        {"ratio": 0.2, "slices": True},
    ],
)
def test_budget_settings_refuse_what_no_window_can_count(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        BudgetSettings(**kwargs)


# --- the window arithmetic ---------------------------------------------------------------

events = st.lists(
    st.tuples(
        st.floats(0.0, 4.0, allow_nan=False),  # seconds since the last event
        st.integers(0, 20),  # calls ended meanwhile
        st.integers(0, 6),  # retries asked for then
    ),
    max_size=120,
)


@settings(max_examples=300, deadline=None)
@given(
    trace=events,
    ratio=st.sampled_from([0.0, 0.1, 0.2, 0.5, 1.0]),
    window=st.sampled_from([0.5, 3.0, 10.0]),
    floor=st.sampled_from([0.0, 0.5, 2.0]),
    slices=st.integers(1, 12),
)
# calls made before the window, in a bucket that a late retry keeps: not the window's
@example(
    trace=[(0.0, 0, 1), (0.2, 100, 0), (9.7, 0, 1), (0.6, 0, 1)],
    ratio=1.0,
    window=10.0,
    floor=0.0,
    slices=1,
)
def test_no_window_ever_holds_more_retries_than_its_share_of_calls_plus_the_floor(
    trace: list[tuple[float, int, int]], ratio: float, window: float, floor: float, slices: int
) -> None:
    clock = Clock()
    calls = 0
    budget = RetryBudget(
        BudgetSettings(ratio, window, floor, slices), calls=lambda: calls, clock=clock
    )
    ended: list[tuple[float, int]] = []  # (time, calls ended so far)
    granted: list[float] = []
    for gap, new_calls, asks in trace:
        clock.now += gap
        calls += new_calls
        ended.append((clock.now, calls))
        for _ in range(asks):
            if budget.try_spend():
                granted.append(clock.now)
    for at in granted:
        start = at - window
        in_window = sum(1 for t in granted if start < t <= at)
        before = max((c for t, c in ended if t < start), default=0)
        calls_in_window = dict(ended)[at] - before
        assert in_window <= ratio * calls_in_window + floor * window + 1e-9
    assert len(budget._buckets) <= slices + 2  # bounded whatever the traffic


@settings(max_examples=200, deadline=None)
@given(trace=events, window=st.sampled_from([1.0, 10.0]), slices=st.integers(1, 12))
def test_after_a_quiet_window_and_a_slice_the_floor_always_allows_a_retry(
    trace: list[tuple[float, int, int]], window: float, slices: int
) -> None:
    clock = Clock()
    budget = RetryBudget(BudgetSettings(0.0, window, 1.0, slices), clock=clock)
    for gap, _, asks in trace:
        clock.now += gap
        for _ in range(asks):
            budget.try_spend()
    clock.now += window + window / slices + 1e-6
    assert budget.try_spend()


@settings(max_examples=100, deadline=None)
@given(rate=st.integers(1, 50), ratio=st.sampled_from([0.1, 0.2, 0.5]))
def test_a_steady_stream_earns_its_share(rate: int, ratio: float) -> None:
    """Without a floor, a steady stream of failing calls gets retries near ``ratio`` of
    its calls: the lower bound on calls costs at most two slices of them."""
    clock = Clock()
    calls = 0
    budget = RetryBudget(BudgetSettings(ratio, 10.0, 0.0), calls=lambda: calls, clock=clock)
    made = 0
    for _ in range(100 * 10):  # 100 s in steps of 0.1 s
        clock.now += 0.1
        calls += rate
        for _ in range(rate):
            made += budget.try_spend()
    total = 100 * 10 * rate
    assert ratio * total * 0.8 <= made <= ratio * total + 1
