"""breaker_mode (normal, metrics_only, disabled), handler.force_open / reset, open-time
growth on re-opens and the half-open wait, through the handler, sync and async; and the
process-wide timer reporting OPEN -> HALF_OPEN on the real clock."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from coordination import CircuitOpenError, ConfigError
from coordination.error_handling import (
    BreakerSettings,
    BreakerTransition,
    CircuitBreaker,
    CircuitState,
    CoordinationErrorHandler,
)
from coordination.error_handling._breaker_modes import DisabledBreaker, MetricsOnlyBreaker
from fakes import FakeClock

OPTIONS: dict[str, Any] = {
    "max_retries": 0,
    "circuit_breaker_threshold": 2,
    "circuit_breaker_timeout": 10.0,
}


def failing() -> None:
    raise ConnectionError("down")


async def afailing() -> None:
    raise ConnectionError("down")


def make_handler(clock: FakeClock, **config: Any) -> CoordinationErrorHandler:
    return CoordinationErrorHandler(
        {"base_delay": 0, **config}, clock=clock, sleep=clock.sleep, async_sleep=clock.async_sleep
    )


# --- metrics_only -------------------------------------------------------------------------


def test_metrics_only_never_rejects_but_opens_and_counts(clock: FakeClock) -> None:
    handler = make_handler(clock)
    seen: list[BreakerTransition] = []
    handler.add_transition_hook(seen.append)
    call = handler.decorate(failing, operation_name="dep", breaker_mode="metrics_only", **OPTIONS)
    calls = 0
    for _ in range(6):
        calls += 1
        with pytest.raises(ConnectionError):  # never CircuitOpenError
            call()
    breaker = handler.circuit_breaker("dep")
    assert isinstance(breaker, MetricsOnlyBreaker)
    snapshot = breaker.snapshot()
    assert snapshot.state is CircuitState.OPEN
    assert snapshot.mode == "metrics_only"
    assert snapshot.would_reject == 4  # the two failures opened it; four more ran anyway
    assert [t.new for t in seen] == [CircuitState.OPEN]
    stats = handler.operation_stats()["dep"]
    assert stats["rejections"] == 0
    assert stats["failures"] == calls
    report = handler.get_error_report()["circuit_breakers"]["dep"]
    assert report["mode"] == "metrics_only"
    assert report["would_reject"] == 4
    # a breaker that rejects nothing does not degrade health
    assert handler.get_health_status()["status"] == "HEALTHY"


def test_metrics_only_recovers_like_the_normal_mode(clock: FakeClock) -> None:
    handler = make_handler(clock)
    healthy = False

    def dependency() -> str:
        if not healthy:
            raise ConnectionError("down")
        return "ok"

    call = handler.decorate(
        dependency, operation_name="dep", breaker_mode="metrics_only", **OPTIONS
    )
    for _ in range(2):
        with pytest.raises(ConnectionError):
            call()
    healthy = True
    assert call() == "ok"  # refused by the shadow breaker: ran, not told to it
    assert handler.circuit_breaker("dep").state is CircuitState.OPEN
    clock.advance(10.0)
    assert call() == "ok"  # the trial
    snapshot = handler.circuit_breaker("dep").snapshot()
    assert snapshot.state is CircuitState.CLOSED
    assert snapshot.would_reject == 1
    assert snapshot.transitions == {"CLOSED->OPEN": 1, "OPEN->HALF_OPEN": 1, "HALF_OPEN->CLOSED": 1}


async def test_metrics_only_async(clock: FakeClock) -> None:
    handler = make_handler(clock)
    call = handler.decorate(afailing, operation_name="adep", breaker_mode="metrics_only", **OPTIONS)
    for _ in range(5):
        with pytest.raises(ConnectionError):
            await call()
    snapshot = handler.circuit_breaker("adep").snapshot()
    assert (snapshot.state, snapshot.would_reject) == (CircuitState.OPEN, 3)


async def test_metrics_only_keeps_concurrent_tasks_apart(clock: FakeClock) -> None:
    """A refused call's outcome is not told to the breaker, while an admitted trial's
    outcome, in another task at the same time, is."""
    breaker = MetricsOnlyBreaker(
        CircuitBreaker("dep", BreakerSettings(failure_threshold=1, open_seconds=1.0), clock=clock)
    )
    breaker.acquire()
    breaker.record_failure(0.0)
    clock.advance(1.0)
    trial_in = asyncio.Event()
    refused_done = asyncio.Event()

    async def trial() -> None:
        await breaker.aacquire()  # admitted: the half-open trial
        trial_in.set()
        await refused_done.wait()
        await breaker.arecord_success(0.0)

    async def refused() -> None:
        await trial_in.wait()
        await breaker.aacquire()  # refused (the one trial slot is taken): runs anyway
        await breaker.arecord_failure(0.0)  # not the breaker's business
        refused_done.set()

    await asyncio.gather(trial(), refused())
    snapshot = breaker.snapshot()
    assert snapshot.state is CircuitState.CLOSED
    assert snapshot.would_reject == 1


def test_force_open_under_metrics_only_counts_every_call(clock: FakeClock) -> None:
    handler = make_handler(clock)
    call = handler.decorate(lambda: "ok", operation_name="dep", breaker_mode="metrics_only")
    handler.force_open("dep")
    assert [call(), call()] == ["ok", "ok"]
    snapshot = handler.circuit_breaker("dep").snapshot()
    assert (snapshot.forced_open, snapshot.would_reject) == (True, 2)


# --- disabled -----------------------------------------------------------------------------


def test_disabled_makes_no_breaker_at_all(clock: FakeClock) -> None:
    made: list[str] = []

    def factory(name: str, settings: BreakerSettings, **kwargs: Any) -> CircuitBreaker:
        made.append(name)
        return CircuitBreaker(name, settings, **kwargs)

    handler = CoordinationErrorHandler(
        {"base_delay": 0, "breaker_mode": "disabled"}, clock=clock, breaker_factory=factory
    )
    call = handler.decorate(failing, operation_name="dep", **OPTIONS)
    for _ in range(10):
        with pytest.raises(ConnectionError):
            call()
    assert made == []
    breaker = handler.circuit_breaker("dep")
    assert isinstance(breaker, DisabledBreaker)
    assert breaker.state is CircuitState.CLOSED
    report = handler.get_error_report()["circuit_breakers"]["dep"]
    assert (report["mode"], report["backend"], report["state"]) == ("disabled", "none", "CLOSED")
    assert handler.operation_stats()["dep"]["failures"] == 10


def test_disabled_still_retries_and_counts(clock: FakeClock) -> None:
    handler = make_handler(clock)
    attempts: list[int] = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("blip")
        return "ok"

    call = handler.decorate(flaky, operation_name="dep", breaker_mode="disabled", max_retries=3)
    assert call() == "ok"
    stats = handler.operation_stats()["dep"]
    assert (stats["retries"], stats["successes"]) == (2, 1)


async def test_disabled_async(clock: FakeClock) -> None:
    handler = make_handler(clock)
    call = handler.decorate(afailing, operation_name="adep", breaker_mode="disabled", **OPTIONS)
    for _ in range(5):
        with pytest.raises(ConnectionError):
            await call()

    async def ok() -> str:
        return "ok"

    assert await handler.decorate(ok, operation_name="aok", breaker_mode="disabled")() == "ok"
    assert handler.operation_stats()["aok"]["successes"] == 1


def test_force_open_on_a_disabled_breaker_warns(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    handler = make_handler(clock)
    call = handler.decorate(lambda: "ok", operation_name="dep", breaker_mode="disabled")
    handler.force_open("dep")
    assert call() == "ok"
    assert "disabled" in caplog.text


def test_a_bad_mode_names_the_setting() -> None:
    with pytest.raises(ConfigError, match="breaker_mode") as raised:
        CoordinationErrorHandler().config_options(breaker_mode="shadow")
    assert raised.value.field == "breaker_mode"


# --- force_open / reset on the handler ----------------------------------------------------


def test_force_open_and_reset_per_operation(clock: FakeClock) -> None:
    handler = make_handler(clock)
    one = handler.decorate(lambda: 1, operation_name="one")
    two = handler.decorate(lambda: 2, operation_name="two")
    handler.force_open("one")
    clock.advance(3600)  # forced open does not time out
    with pytest.raises(CircuitOpenError):
        one()
    assert two() == 2
    handler.reset("one")
    assert one() == 1
    handler.force_open("one")
    handler.force_open("two")
    handler.reset()  # every operation
    assert (one(), two()) == (1, 2)
    assert handler.circuit_breaker("one").snapshot().transitions["OPEN->CLOSED"] == 2


async def test_force_open_async(clock: FakeClock) -> None:
    handler = make_handler(clock)

    async def ok() -> str:
        return "ok"

    call = handler.decorate(ok, operation_name="aok")
    handler.force_open("aok")
    with pytest.raises(CircuitOpenError):
        await call()
    handler.reset("aok")
    assert await call() == "ok"


# --- open-time growth and the half-open wait ----------------------------------------------


def test_each_reopen_waits_longer_until_the_cap_and_closing_starts_again(
    clock: FakeClock,
) -> None:
    handler = make_handler(clock)
    healthy = False

    def dependency() -> str:
        if not healthy:
            raise ConnectionError("down")
        return "ok"

    call = handler.decorate(
        dependency,
        operation_name="dep",
        open_backoff_multiplier=2.0,
        max_open_seconds=35.0,
        **OPTIONS,
    )
    for _ in range(2):
        with pytest.raises(ConnectionError):
            call()
    waits = []
    for _ in range(4):
        with pytest.raises(CircuitOpenError) as refused:
            call()
        waits.append(refused.value.retry_after)
        clock.advance(refused.value.retry_after)
        with pytest.raises(ConnectionError):
            call()  # the trial fails: re-opened, for longer
    assert waits == pytest.approx([10.0, 20.0, 35.0, 35.0])
    snapshot = handler.circuit_breaker("dep").snapshot()
    assert (snapshot.reopens, snapshot.open_seconds) == (4, 35.0)
    clock.advance(35.0)
    healthy = True
    assert call() == "ok"
    snapshot = handler.circuit_breaker("dep").snapshot()
    assert (snapshot.state, snapshot.reopens, snapshot.open_seconds) == (
        CircuitState.CLOSED,
        0,
        10.0,
    )
    healthy = False
    for _ in range(2):
        with pytest.raises(ConnectionError):
            call()
    with pytest.raises(CircuitOpenError) as refused:
        call()
    assert refused.value.retry_after == pytest.approx(10.0)  # growth forgotten on close


def test_a_half_open_breaker_with_too_few_trials_reopens_after_the_wait(
    clock: FakeClock,
) -> None:
    """Three trials wanted, one comes and succeeds, no more: the breaker does not stay
    half-open forever (resilience4j #903)."""
    seen: list[BreakerTransition] = []
    settings = BreakerSettings(
        failure_threshold=1, open_seconds=5.0, half_open_calls=3, half_open_max_wait=2.0
    )
    breaker = CircuitBreaker("dep", settings, clock=clock, on_transition=seen.append)
    breaker.record_failure(0.0)
    clock.advance(5.0)
    breaker.acquire()
    breaker.record_success(0.0)
    clock.advance(1.0)
    assert breaker.state is CircuitState.HALF_OPEN
    clock.advance(1.0)
    assert breaker.state is CircuitState.OPEN  # the read makes (and reports) the re-open
    assert seen[-1].reason == "trial calls not concluded within 2s"
    assert breaker.snapshot().retry_after == pytest.approx(5.0)


def test_no_trial_no_deadline(clock: FakeClock) -> None:
    """The half-open wait starts with the first trial: a breaker nobody calls stays
    HALF_OPEN (its next call is admitted), it does not cycle."""
    breaker = CircuitBreaker(
        "dep",
        BreakerSettings(failure_threshold=1, open_seconds=1.0, half_open_max_wait=0.5),
        clock=clock,
    )
    breaker.record_failure(0.0)
    clock.advance(100.0)
    assert breaker.state is CircuitState.HALF_OPEN
    breaker.acquire()
    assert breaker.snapshot().transitions == {"CLOSED->OPEN": 1, "OPEN->HALF_OPEN": 1}


def test_the_open_to_half_open_transition_is_reported_once_on_read(clock: FakeClock) -> None:
    seen: list[BreakerTransition] = []
    breaker = CircuitBreaker(
        "dep",
        BreakerSettings(failure_threshold=1, open_seconds=1.0),
        clock=clock,
        on_transition=seen.append,
    )
    breaker.record_failure(0.0)
    clock.advance(1.0)
    for _ in range(3):
        assert breaker.state is CircuitState.HALF_OPEN
        breaker.snapshot()
    breaker.acquire()
    assert [(t.old, t.new) for t in seen] == [
        (CircuitState.CLOSED, CircuitState.OPEN),
        (CircuitState.OPEN, CircuitState.HALF_OPEN),
    ]
    assert seen[-1].at == clock.now


# --- the timer (real clock) ---------------------------------------------------------------


def test_the_timer_reports_half_open_when_the_open_period_ends() -> None:
    reported = threading.Event()
    seen: list[tuple[BreakerTransition, str]] = []

    def hook(transition: BreakerTransition) -> None:
        seen.append((transition, threading.current_thread().name))
        if transition.new is CircuitState.HALF_OPEN:
            reported.set()

    breaker = CircuitBreaker(
        "timed", BreakerSettings(failure_threshold=1, open_seconds=0.05), on_transition=hook
    )
    opened = time.monotonic()
    breaker.record_failure(0.0)
    assert reported.wait(5), "no OPEN -> HALF_OPEN report without a call or a read"
    transition, thread = seen[-1]
    assert transition.old is CircuitState.OPEN
    assert thread == "coordination-breaker-timer"
    assert transition.at - opened >= 0.05
    assert breaker._state is CircuitState.HALF_OPEN  # made, not only shown
    breaker.acquire()
    breaker.record_success(0.0)
    assert [t.new for t, _ in seen] == [
        CircuitState.OPEN,
        CircuitState.HALF_OPEN,
        CircuitState.CLOSED,
    ]


def test_the_timer_keeps_no_breaker_alive_and_one_entry_per_breaker() -> None:
    import gc
    import weakref

    from coordination.error_handling._breaker_timer import open_timer

    breaker = CircuitBreaker("gone", BreakerSettings(failure_threshold=1, open_seconds=3600.0))
    for _ in range(5):  # opened, reset, opened again: still one pending look
        breaker.record_failure(0.0)
        breaker.reset()
    breaker.record_failure(0.0)
    assert open_timer().pending(breaker) == 1
    ref = weakref.ref(breaker)
    del breaker
    gc.collect()
    assert ref() is None


def test_an_injected_clock_never_uses_the_timer(clock: FakeClock) -> None:
    from coordination.error_handling import _breaker_timer

    breaker = CircuitBreaker("fake", BreakerSettings(failure_threshold=1), clock=clock)
    breaker.record_failure(0.0)
    assert _breaker_timer.open_timer().pending(breaker) == 0


@pytest.mark.parametrize("mode", ["metrics_only", "disabled"])
def test_a_time_budget_counts_from_the_start_in_every_mode(clock: FakeClock, mode: str) -> None:
    handler = make_handler(clock)
    attempts: list[float] = []

    def slow_failure() -> None:
        attempts.append(clock.now)
        clock.advance(3.0)
        raise ConnectionError("slow and down")

    call = handler.decorate(
        slow_failure,
        operation_name="dep",
        breaker_mode=mode,
        max_retries=5,
        retry_time_budget=5.0,
    )
    with pytest.raises(ConnectionError):
        call()
    assert len(attempts) == 2  # 3 s, then 6 s > 5 s: the budget, from the call's start
    assert handler.circuit_breaker("dep").snapshot().mode == mode


@pytest.mark.parametrize("mode", ["metrics_only", "disabled"])
async def test_a_time_budget_counts_from_the_start_in_every_mode_async(
    clock: FakeClock, mode: str
) -> None:
    handler = make_handler(clock)
    attempts: list[float] = []

    async def slow_failure() -> None:
        attempts.append(clock.now)
        clock.advance(3.0)
        raise ConnectionError("slow and down")

    call = handler.decorate(
        slow_failure,
        operation_name="adep",
        breaker_mode=mode,
        max_retries=5,
        retry_time_budget=5.0,
    )
    with pytest.raises(ConnectionError):
        await call()
    assert len(attempts) == 2

    async def ok() -> str:
        return "ok"

    fine = handler.decorate(ok, operation_name="aok", breaker_mode=mode, retry_time_budget=5.0)
    assert await fine() == "ok"
    assert handler.operation_stats()["aok"]["successes"] == 1


@pytest.mark.parametrize("mode", ["metrics_only", "disabled"])
def test_results_are_looked_at_in_every_mode(clock: FakeClock, mode: str) -> None:
    handler = make_handler(clock)
    answers = iter([None, None, "ready"])
    call = handler.decorate(
        lambda: next(answers),
        operation_name="poll",
        breaker_mode=mode,
        max_retries=5,
        retry_if_result=lambda value: value is None,
    )
    assert call() == "ready"
    stats = handler.operation_stats()["poll"]
    assert (stats["retries"], stats["successes"]) == (2, 1)


def test_execute_with_error_handling_in_every_mode(clock: FakeClock) -> None:
    handler = make_handler(clock)
    for mode in ("metrics_only", "disabled"):
        for _ in range(4):
            with pytest.raises(ConnectionError):
                handler.execute_with_error_handling(
                    failing, operation_name=f"x-{mode}", breaker_mode=mode, **OPTIONS
                )
        assert handler.execute_with_error_handling(len, ("ab",), operation_name=f"y-{mode}") == 2
    snapshot = handler.snapshot()
    assert snapshot.breakers["x-metrics_only"].would_reject == 2
    assert snapshot.breakers["x-disabled"].mode == "disabled"
    assert snapshot.operations["x-disabled"].failures == 4
