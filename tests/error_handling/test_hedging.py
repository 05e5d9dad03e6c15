"""Hedging (``hedge_after``, ``max_hedged_attempts``): the issue's stall test, sync and
async; nothing of a call left running after it; each hedge with its breaker permit and a
retry of the budget; the percentile form; the counters and their series.

Stalls here are real (the feature is about wall time): short ones, or a gate the test
opens at the end, so no worker or task outlives a test.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordination import CircuitOpenError, ConfigError, OperationCancelled, OperationTimeout
from coordination._sketch import LatencySketch
from coordination.error_handling import CircuitState, CoordinationErrorHandler
from coordination.error_handling._breaker import memory_breaker_factory
from coordination.error_handling._cancellation import Cancellation
from coordination.error_handling._hedging import FLOOR, REFRESH, Hedging, samples_needed
from coordination.error_handling._plan import Plan
from coordination.error_handling._sync_runner import SyncRunner
from coordination.observability import CoordinationCollector

STALL = 0.5


def wait_until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """What gated attempts wait for; opened at the end so no worker outlives the test."""
    event = threading.Event()
    yield event
    event.set()


class Permits:
    """A breaker factory whose breakers count what the pipeline asks of them."""

    def __init__(self) -> None:
        self.asked: dict[str, int] = {"acquire": 0, "success": 0, "failure": 0, "release": 0}
        self.breaker: Any = None

    def __call__(self, name: str, settings: Any, **kwargs: Any) -> Any:
        self.breaker = _Counting(memory_breaker_factory(name, settings, **kwargs), self.asked)
        return self.breaker

    @property
    def balanced(self) -> bool:
        """Every permit taken was given back once: by an outcome or a release."""
        asked = self.asked
        return asked["acquire"] == asked["success"] + asked["failure"] + asked["release"]


class _Counting:
    def __init__(self, inner: Any, asked: dict[str, int]) -> None:
        self._inner = inner
        self._asked = asked

    def __getattr__(self, name: str) -> Any:
        if name in ("guard", "aguard", "guard_from_start", "aguard_from_start"):
            raise AttributeError(name)  # every call through the counted methods
        return getattr(self._inner, name)

    def acquire(self) -> None:
        self._inner.acquire()  # counted only when granted
        self._asked["acquire"] += 1

    def record_success(self, duration: float) -> None:
        self._asked["success"] += 1
        self._inner.record_success(duration)

    def record_failure(self, duration: float) -> None:
        self._asked["failure"] += 1
        self._inner.record_failure(duration)

    def release(self) -> None:
        self._asked["release"] += 1
        self._inner.release()


class Budget:
    """A retry budget double (the RetryBudgetBackend Protocol) allowing ``allowed`` spends."""

    blocking = False

    def __init__(self, allowed: int) -> None:
        self.allowed = allowed
        self.asked = 0

    def record_call(self) -> None:
        pass

    def try_spend(self) -> bool:
        self.asked += 1
        if self.allowed > 0:
            self.allowed -= 1
            return True
        return False

    async def arecord_call(self) -> None:
        pass

    async def atry_spend(self) -> bool:
        return self.try_spend()


def p95(latencies: list[float]) -> float:
    return sorted(latencies)[int(0.95 * len(latencies)) - 1]


# --- the test ------------------------------------------------------------------


def test_sync_one_attempt_in_five_stalling_is_hedged_to_a_low_p95() -> None:
    handler = CoordinationErrorHandler({"base_delay": 0})
    attempts = itertools.count(1)

    def read() -> int:
        if next(attempts) % 5 == 0:  # one attempt in five stalls (hedges included)
            time.sleep(STALL)
        return 1

    # the stalled losers hold their workers for 0.5 s: enough workers for them
    hedged = handler.decorate(read, hedge_after=0.02, timeout_workers=32, operation_name="r")
    latencies = []
    for _ in range(100):
        began = time.perf_counter()
        assert hedged() == 1
        latencies.append(time.perf_counter() - began)
    made = next(attempts) - 1
    stats = handler.operation_stats()["r"]
    assert p95(latencies) < 0.2
    assert made / 100 < 1.4  # well under 1.6: about one hedge per stalled first attempt
    assert stats["successes"] == 100
    assert stats["hedged_attempts"] == made - 100
    assert stats["hedge_wins"] == stats["hedged_attempts"] > 0
    pool = handler._operations["r"].attempt_pool
    assert pool is not None
    wait_until(lambda: pool.busy == 0)  # the losers ended; their workers are free again
    handler.close()


async def test_async_one_attempt_in_five_stalling_is_hedged_and_the_losers_cancelled() -> None:
    handler = CoordinationErrorHandler({"base_delay": 0})
    attempts = itertools.count(1)
    cancelled = itertools.count()

    async def read() -> int:
        if next(attempts) % 5 == 0:
            try:
                await asyncio.sleep(STALL)
            except asyncio.CancelledError:
                next(cancelled)
                raise
        return 1

    hedged = handler.decorate(read, hedge_after=0.02, operation_name="r")
    latencies = []
    began_all = time.perf_counter()
    for _ in range(100):
        began = time.perf_counter()
        assert await hedged() == 1
        latencies.append(time.perf_counter() - began)
        assert asyncio.all_tasks() == {asyncio.current_task()}  # nothing left running
    made = next(attempts) - 1
    stats = handler.operation_stats()["r"]
    assert p95(latencies) < 0.2
    assert made / 100 < 1.4
    assert stats["hedge_wins"] == stats["hedged_attempts"] == made - 100 > 0
    assert next(cancelled) == stats["hedge_wins"]  # every stalled loser really cancelled
    assert time.perf_counter() - began_all < 20 * STALL  # no call waited for a stall


# --- nothing left running ---------------------------------------------------------------


def test_a_sync_loser_keeps_its_worker_until_it_ends_and_its_result_is_discarded(
    gate: threading.Event,
) -> None:
    handler = CoordinationErrorHandler({"base_delay": 0})
    attempts = itertools.count(1)
    ended = threading.Event()

    def read() -> str:
        if next(attempts) == 1:
            gate.wait(5)
            ended.set()
            return "late"
        return "hedge"

    hedged = handler.decorate(read, hedge_after=0.01, operation_name="r")
    assert hedged() == "hedge"
    pool = handler._operations["r"].attempt_pool
    assert pool is not None
    assert pool.busy == 1  # the loser still runs, on its worker
    gate.set()
    assert ended.wait(5)
    wait_until(lambda: pool.busy == 0)
    stats = handler.operation_stats()["r"]
    assert (stats["successes"], stats["hedged_attempts"], stats["hedge_wins"]) == (1, 1, 1)


async def test_async_losers_are_cancelled_and_awaited_before_the_call_returns() -> None:
    handler = CoordinationErrorHandler({"base_delay": 0})
    attempts = itertools.count(1)
    finished: list[int] = []

    async def read() -> int:
        number = next(attempts)
        try:
            await asyncio.sleep(10 if number < 3 else 0)
            return number
        finally:
            finished.append(number)  # runs before the call returns, cancelled or not

    hedged = handler.decorate(read, hedge_after=0.01, max_hedged_attempts=2, operation_name="r")
    assert await hedged() == 3
    assert sorted(finished) == [1, 2, 3]
    assert asyncio.all_tasks() == {asyncio.current_task()}
    stats = handler.operation_stats()["r"]
    assert (stats["hedged_attempts"], stats["hedge_wins"]) == (2, 1)


async def test_async_timeout_cancels_every_attempt_of_the_race() -> None:
    permits = Permits()
    handler = CoordinationErrorHandler({"base_delay": 0}, breaker_factory=permits)
    cancelled = itertools.count()

    async def read() -> int:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            next(cancelled)
            raise
        return 1

    hedged = handler.decorate(
        read, hedge_after=0.01, timeout=0.1, max_retries=0, operation_name="r"
    )
    began = time.perf_counter()
    with pytest.raises(OperationTimeout):
        await hedged()
    assert time.perf_counter() - began < 2
    assert next(cancelled) == 2
    assert asyncio.all_tasks() == {asyncio.current_task()}
    assert permits.balanced
    assert permits.asked["acquire"] == 2


def test_sync_timeout_bounds_the_whole_race(gate: threading.Event) -> None:
    permits = Permits()
    handler = CoordinationErrorHandler({"base_delay": 0}, breaker_factory=permits)
    hedged = handler.decorate(
        lambda: gate.wait(5), hedge_after=0.01, timeout=0.1, max_retries=0, operation_name="r"
    )
    began = time.perf_counter()
    with pytest.raises(OperationTimeout):
        hedged()
    assert time.perf_counter() - began < 2
    assert handler.operation_stats()["r"]["hedged_attempts"] == 1
    assert permits.balanced
    assert permits.asked["acquire"] == 2


def test_a_cancelled_scope_stops_a_sync_race(gate: threading.Event) -> None:
    handler = CoordinationErrorHandler({"base_delay": 0})
    hedged = handler.decorate(lambda: gate.wait(5), hedge_after=0.01, operation_name="r")
    with Cancellation(timeout=0.1), pytest.raises(OperationCancelled):
        hedged()


# --- breaker and retry budget ------------------------------------------------------------


@pytest.mark.parametrize("winner", ["first", "hedge"])
def test_each_hedge_takes_a_permit_and_every_permit_is_given_back(winner: str) -> None:
    permits = Permits()
    handler = CoordinationErrorHandler({"base_delay": 0}, breaker_factory=permits)
    attempts = itertools.count(1)

    def read() -> int:
        number = next(attempts)
        slow = (number == 1) == (winner == "hedge")
        time.sleep(0.2 if slow else 0.03)
        return number

    hedged = handler.decorate(read, hedge_after=0.01, operation_name="r")
    assert hedged() == (2 if winner == "hedge" else 1)
    assert permits.asked["acquire"] == 2
    assert permits.asked["success"] == 1  # the race's one answer
    assert permits.balanced  # the loser's permit released: it neither failed nor succeeded


async def test_failed_attempts_of_a_race_each_count_as_a_failure_to_the_breaker() -> None:
    permits = Permits()
    handler = CoordinationErrorHandler(
        {"base_delay": 0, "circuit_breaker_threshold": 10}, breaker_factory=permits
    )

    async def read() -> int:
        await asyncio.sleep(0.05)
        raise ConnectionError("down")

    hedged = handler.decorate(
        read, hedge_after=0.01, max_hedged_attempts=2, max_retries=0, operation_name="r"
    )
    with pytest.raises(ConnectionError):
        await hedged()
    assert permits.asked["acquire"] == 3
    assert permits.asked["failure"] == 3
    assert permits.balanced
    assert handler.circuit_breaker("r").snapshot().consecutive_failures == 3
    assert handler.snapshot().errors_by_type["ConnectionError"] == 3


def test_a_failed_first_attempt_does_not_fail_a_call_a_hedge_answers() -> None:
    permits = Permits()
    handler = CoordinationErrorHandler({"base_delay": 0}, breaker_factory=permits)
    attempts = itertools.count(1)

    def read() -> int:
        if next(attempts) == 1:
            time.sleep(0.05)
            raise ConnectionError("first one failed")
        time.sleep(0.1)
        return 2

    hedged = handler.decorate(read, hedge_after=0.01, max_retries=0, operation_name="r")
    assert hedged() == 2
    assert (permits.asked["failure"], permits.asked["success"]) == (1, 1)
    assert permits.balanced
    assert handler.operation_stats()["r"]["hedge_wins"] == 1


async def test_async_a_failed_first_attempt_waits_for_the_running_hedge() -> None:
    permits = Permits()
    handler = CoordinationErrorHandler({"base_delay": 0}, breaker_factory=permits)
    attempts = itertools.count(1)

    async def read() -> int:
        if next(attempts) == 1:
            await asyncio.sleep(0.05)
            raise ConnectionError("first one failed")
        await asyncio.sleep(0.1)
        return 2

    hedged = handler.decorate(read, hedge_after=0.01, max_retries=0, operation_name="r")
    assert await hedged() == 2
    assert (permits.asked["failure"], permits.asked["success"]) == (1, 1)
    assert permits.balanced
    assert handler.operation_stats()["r"]["hedge_wins"] == 1


async def test_a_caller_cancelling_an_async_race_cancels_every_attempt() -> None:
    permits = Permits()
    handler = CoordinationErrorHandler({"base_delay": 0}, breaker_factory=permits)
    cancelled = itertools.count()

    async def read() -> int:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            next(cancelled)
            raise
        return 1

    hedged = handler.decorate(read, hedge_after=0.01, operation_name="r")
    call = asyncio.ensure_future(hedged())
    await asyncio.sleep(0.1)  # the hedge has started
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert next(cancelled) == 2
    assert asyncio.all_tasks() == {asyncio.current_task()}
    assert permits.asked["acquire"] == 2
    assert permits.balanced


def test_an_open_breaker_means_no_hedge(gate: threading.Event) -> None:
    handler = CoordinationErrorHandler({"base_delay": 0})

    def read() -> int:
        handler.force_open("r")  # opened while the first attempt runs
        time.sleep(0.1)
        return 1

    hedged = handler.decorate(read, hedge_after=0.01, operation_name="r")
    assert hedged() == 1
    assert handler.operation_stats()["r"]["hedged_attempts"] == 0
    assert handler.circuit_breaker("r").state is CircuitState.OPEN


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_hedges_spend_the_retry_budget_and_stop_when_it_is_spent(kind: str) -> None:
    handler = CoordinationErrorHandler({"base_delay": 0})
    budget = Budget(allowed=1)

    def slow() -> int:
        time.sleep(0.06)
        return 1

    async def aslow() -> int:
        await asyncio.sleep(0.06)
        return 1

    hedged: Any = handler.decorate(
        slow if kind == "sync" else aslow,
        hedge_after=0.01,
        max_hedged_attempts=3,
        operation_name="r",
    )
    handler._operations["r"].retry_budget = budget  # what the budget part makes
    result = hedged()
    assert (await result if kind == "async" else result) == 1
    assert budget.asked == 2  # one spent, the second refused: no third ask
    assert handler.operation_stats()["r"]["hedged_attempts"] == 1


# --- the percentile form ------------------------------------------------------------------


def test_a_percentile_hedges_only_once_it_has_enough_samples(gate: threading.Event) -> None:
    handler = CoordinationErrorHandler({"base_delay": 0})
    stall = threading.Event()

    def read() -> int:
        if stall.is_set():
            stall.clear()  # only this call's first attempt stalls
            gate.wait(5)
        return 1

    plan = handler.plan("r", {"hedge_after": "p95"})
    hedged = SyncRunner(plan).wrap(read)
    hedging = plan.hedging
    assert hedging is not None
    assert hedging.needed == samples_needed(0.95) == 40
    for _ in range(39):
        hedged()
    assert hedging.delay is None  # not enough samples yet: not hedged, timed
    assert handler._operations["r"].attempt_pool is None  # and run in the caller's thread
    hedged()
    delay = hedging.delay
    assert delay is not None
    assert FLOOR <= delay < 0.05
    stall.set()
    began = time.perf_counter()
    assert hedged() == 1
    assert time.perf_counter() - began < 1
    assert handler.operation_stats()["r"]["hedge_wins"] == 1
    assert hedging.samples == 41  # the stalled first attempt too, at its time so far


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(min_value=0.0, max_value=10.0), min_size=1, max_size=400),
    st.sampled_from(["p50", "p95", "p99", "p99.9"]),
)
def test_the_percentile_delay_is_the_quantile_read_at_the_last_refresh(
    samples: list[float], name: str
) -> None:
    hedging = Hedging(cast(Plan, None), name, 1)  # the arithmetic reads nothing of a plan
    for value in samples:
        hedging.observe(value)
    needed = hedging.needed
    if len(samples) < needed:
        assert hedging.delay is None
        return
    # read at every sample until it is known, then every REFRESH samples
    last = needed + (len(samples) - needed) // REFRESH * REFRESH
    sketch = LatencySketch()
    for value in samples[:last]:
        sketch.add(value)
    assert hedging.delay == max(FLOOR, sketch.quantile(hedging.quantile))


def test_the_sketch_keeps_two_generations_at_most() -> None:
    hedging = Hedging(cast(Plan, None), "p95", 1)
    for _ in range(3 * hedging.window + 5):
        hedging.observe(0.01)
    assert hedging.samples <= 2 * hedging.window + REFRESH  # rotated at a refresh
    assert hedging.delay is not None
    assert abs(hedging.delay - 0.01) <= 0.0001


@given(st.floats(min_value=0.001, max_value=0.9999))
def test_samples_needed_holds_a_tail_of_two_and_at_least_twenty(quantile: float) -> None:
    needed = samples_needed(quantile)
    assert needed >= 20
    assert needed * (1 - quantile) >= 2 - 1e-9


# --- settings and series ------------------------------------------------------------------


def test_bad_hedging_settings_are_config_errors_naming_them() -> None:
    handler = CoordinationErrorHandler({})
    with pytest.raises(ConfigError, match="hedge_after"):
        handler.decorate(lambda: 1, hedge_after="soon")
    with pytest.raises(ConfigError, match="max_hedged_attempts"):
        handler.decorate(lambda: 1, hedge_after=0.1, max_hedged_attempts=0)


def test_hedging_from_the_configuration_and_its_series() -> None:
    handler = CoordinationErrorHandler(
        {"base_delay": 0, "operations": {"r": {"hedge_after": "0.01"}}}
    )
    attempts = itertools.count(1)

    def read() -> int:
        if next(attempts) == 1:
            time.sleep(0.1)
        return 1

    assert handler.execute_with_error_handling(read, operation_name="r") == 1
    families = {metric.name: metric for metric in CoordinationCollector({"h": handler}).collect()}
    for name in ("coordination_hedged_attempts", "coordination_hedge_wins"):
        (sample,) = [s for s in families[name].samples if s.name.endswith("_total")]
        assert sample.labels == {"component": "h", "operation": "r"}
        assert sample.value == 1


def test_plans_without_hedging_keep_the_breakers_own_closed_path() -> None:
    handler = CoordinationErrorHandler({})
    assert handler.plan("plain", {}).direct
    assert handler.plan("plain", {}).hedging is None
    assert not handler.plan("hedged", {"hedge_after": 0.1}).direct


@pytest.mark.redis
async def test_hedges_take_and_record_permits_of_a_shared_breaker(
    redis_url: str, namespace: str
) -> None:
    config = {"redis_url": redis_url, "redis_namespace": namespace, "base_delay": 0}
    handler = CoordinationErrorHandler(config)

    async def down() -> None:
        await asyncio.sleep(0.05)
        raise ConnectionError("down")

    hedged = handler.decorate(
        down,
        hedge_after=0.01,
        max_retries=0,
        circuit_breaker_threshold=2,
        operation_name="hedged",
    )
    with pytest.raises(ConnectionError):
        await hedged()  # two attempts, both failed: two failures recorded in Redis
    assert handler.operation_stats()["hedged"]["hedged_attempts"] == 1
    other = CoordinationErrorHandler(config)

    def never() -> None:
        raise AssertionError("the shared breaker is open: not called")

    with pytest.raises(CircuitOpenError):
        other.execute_with_error_handling(
            never, circuit_breaker_threshold=2, operation_name="hedged"
        )


@pytest.mark.parametrize("ratio", [0.0, 0.2])
def test_the_operations_retry_budget_bounds_its_hedges(ratio: float) -> None:
    handler = CoordinationErrorHandler({"base_delay": 0})
    attempts = itertools.count(1)
    calls = 40

    def read() -> int:
        if next(attempts) % 2:  # every first attempt is slow (hedges never are)
            time.sleep(0.03)
        return 1

    hedged = handler.decorate(
        read,
        hedge_after=0.002,
        retry_budget=ratio,
        retry_budget_min_per_second=0,
        operation_name="r",
    )
    for _ in range(calls):
        attempts = itertools.count(1)  # each call: its first attempt slow
        assert hedged() == 1
    made = handler.operation_stats()["r"]["hedged_attempts"]
    assert made <= ratio * calls  # never past the budget's share of the calls
    if ratio:
        assert made > 0  # the budget earned by the calls is spent on hedges


# One attempt of a model race: (milliseconds it takes, whether it succeeds).
_ATTEMPT = st.tuples(st.integers(0, 25), st.booleans())


@settings(max_examples=25, deadline=None)
@given(st.lists(_ATTEMPT, min_size=3, max_size=3), st.integers(1, 2))
def test_model_async_races_leave_nothing_running_and_every_permit_given_back(
    plans: list[tuple[int, bool]], hedges: int
) -> None:
    permits = Permits()
    handler = CoordinationErrorHandler({"base_delay": 0}, breaker_factory=permits)
    attempts = itertools.count()
    started: list[int] = []
    over: list[int] = []  # attempts that ended (returned, raised or were cancelled)

    async def read() -> int:
        number = next(attempts)
        started.append(number)
        milliseconds, succeeds = plans[number]
        try:
            await asyncio.sleep(milliseconds / 1000)
        finally:
            over.append(number)
        if not succeeds:
            raise ConnectionError(f"attempt {number}")
        return number

    hedged = handler.decorate(
        read, hedge_after=0.005, max_hedged_attempts=hedges, max_retries=0, operation_name="r"
    )

    async def call() -> tuple[int | None, BaseException | None]:
        try:
            value = await hedged()
        except ConnectionError as exc:
            return None, exc
        finally:
            assert asyncio.all_tasks() == {asyncio.current_task()}  # nothing left running
        return value, None

    value, error = asyncio.run(call())
    assert sorted(over) == sorted(started)  # every attempt ended before the call did
    assert permits.balanced
    assert permits.asked["acquire"] == len(started) <= 1 + hedges
    if error is None:
        assert value is not None
        assert plans[value][1]  # the answer is a successful attempt's
    else:
        assert str(error) == "attempt 0"  # the first attempt's error
        assert not plans[0][1]


@settings(max_examples=15, deadline=None)
@given(st.lists(_ATTEMPT, min_size=3, max_size=3), st.integers(1, 2))
def test_model_sync_races_free_every_worker_and_give_back_every_permit(
    plans: list[tuple[int, bool]], hedges: int
) -> None:
    permits = Permits()
    handler = CoordinationErrorHandler({"base_delay": 0}, breaker_factory=permits)
    attempts = itertools.count()

    def read() -> int:
        number = next(attempts)
        milliseconds, succeeds = plans[number]
        time.sleep(milliseconds / 1000)
        if not succeeds:
            raise ConnectionError(f"attempt {number}")
        return number

    hedged = handler.decorate(
        read, hedge_after=0.005, max_hedged_attempts=hedges, max_retries=0, operation_name="r"
    )
    outcome: Any
    try:
        outcome = hedged()
    except ConnectionError as exc:
        outcome = exc
    if isinstance(outcome, ConnectionError):
        assert str(outcome) == "attempt 0"  # every attempt failed: the first one's error
    else:
        assert plans[outcome][1]  # the answer is a successful attempt's
    pool = handler._operations["r"].attempt_pool
    assert pool is not None
    wait_until(lambda: pool.busy == 0)  # the losers ended, their workers freed
    assert permits.balanced
    handler.close()
