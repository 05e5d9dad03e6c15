"""The Redis breaker answers like the in-memory one, whatever the sequence of calls,
including calls that never report back (a hung or lost half-open trial), in consecutive
mode and with a sliding window (count or time based, failure rate and slow-call rate).

The one documented difference (``backends/redis/_breaker.py``): with a window, a success
of a call admitted while CLOSED reaches Redis with this process's next script (its next
acquire, its next failure's report, or a snapshot). The reference is therefore the
in-memory breaker told of those successes at that moment, by ``LateSuccesses``.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coordination import CircuitOpenError
from coordination.backends.redis import RedisBackend
from coordination.error_handling import BreakerSettings, CircuitBreaker, CircuitState

pytestmark = pytest.mark.redis

SLOW = 1.0  # slow_call_duration when a window tracks slow calls
OUTCOMES = ["success", "failure", "release", "hang", "peek", "retry"]

# (what happens, milliseconds that pass before it, the call's duration). Redis keeps whole
# milliseconds and the in-memory breaker float seconds, so every time is a multiple of
# 1/8 s: a float holds it exactly, and a deadline that lands on "now" is equal in both,
# not a rounding apart.
steps = st.lists(
    st.tuples(
        st.sampled_from(OUTCOMES),
        st.sampled_from([0, 0, 0, 125, 375, 875, 1000, 2500]),
        st.sampled_from([0.0, 0.0, 2.0]),
    ),
    max_size=40,
)


@st.composite
def windows(draw: st.DrawFn) -> dict[str, Any]:
    """No window (consecutive failures), or a count or time window with its thresholds."""
    kind = draw(st.sampled_from([None, "count", "time"]))
    if kind is None:
        return {}
    failure_rate = draw(st.sampled_from([None, 0.5, 1.0]))
    slow_rate = draw(st.sampled_from([None, 0.5] if failure_rate else [0.5]))
    return {
        "window_type": kind,
        "window_size": draw(st.integers(1, 5)),
        "minimum_calls": draw(st.integers(1, 4)),
        "failure_rate_threshold": failure_rate,
        "slow_call_rate_threshold": slow_rate,
        "slow_call_duration": SLOW if slow_rate or draw(st.booleans()) else None,
        # the consecutive rule still applies beside the window's: often out of reach
        "failure_threshold": draw(st.sampled_from([2, 100])),
    }


class Clock:
    def __init__(self) -> None:
        self.ms = 1_700_000_000_000

    def __call__(self) -> float:
        return self.ms / 1000


class LateSuccesses:
    """The in-memory breaker, told of closed-state successes as the Redis one is when it
    has a window: at this process's next acquire, failure report or snapshot."""

    def __init__(self, breaker: CircuitBreaker) -> None:
        self.breaker = breaker
        self.late = breaker.settings.uses_window
        self.pending: list[float] = []
        self.admitted_closed = False

    def flush(self) -> None:
        for duration in self.pending:
            self.breaker.record_success(duration)
        self.pending.clear()

    def acquire(self) -> None:
        self.flush()
        self.breaker.acquire()
        self.admitted_closed = self.breaker._state is CircuitState.CLOSED

    def record_success(self, duration: float) -> None:
        if self.late and self.admitted_closed:
            self.pending.append(duration)
        else:
            self.breaker.record_success(duration)

    def record_failure(self, duration: float) -> None:
        self.flush()
        self.breaker.record_failure(duration)

    def record_failure_and_acquire(self, duration: float) -> None:
        self.record_failure(duration)
        self.acquire()

    def release(self) -> None:
        self.breaker.release()

    @property
    def state(self) -> CircuitState:
        self.flush()
        return self.breaker.state

    def snapshot(self) -> Any:
        self.flush()
        return self.breaker.snapshot()


def admitted(call: Any, *args: float) -> float:
    """0.0 when admitted, else the rejection's announced wait (always > 0)."""
    wait = 0.0
    try:
        call(*args)
    except CircuitOpenError as exc:
        wait = exc.retry_after
        if wait <= 0:
            raise AssertionError(f"a rejection announced retry_after={wait}") from exc
    return wait


# the open period's growth on re-opens, and its cap
BACKOFF = st.tuples(st.sampled_from([1.0, 2.0]), st.sampled_from([None, 3.0]))


def same_snapshot(shared: Any, local: LateSuccesses) -> None:
    ours, theirs = shared.snapshot(), local.snapshot()
    assert ours.state is theirs.state
    assert ours.consecutive_failures == theirs.consecutive_failures
    assert ours.window_calls == theirs.window_calls
    assert ours.failure_rate == theirs.failure_rate
    assert ours.slow_call_rate == theirs.slow_call_rate
    assert ours.reopens == theirs.reopens
    assert ours.open_seconds == pytest.approx(theirs.open_seconds, abs=0.0011)
    # (the in-memory snapshot says retry_after 0 for overdue trials read as OPEN, and
    # below 0 for an open period over)
    if theirs.state is CircuitState.OPEN and local.breaker._state is CircuitState.OPEN:
        assert ours.retry_after == pytest.approx(theirs.retry_after, abs=0.0011)


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    steps,
    st.integers(1, 3),
    st.integers(1, 2),
    st.sampled_from([None, 0.375, 2.0]),
    windows(),
    BACKOFF,
)
def test_same_decisions_as_the_in_memory_breaker(
    redis_url: str,
    namespace: str,
    script: list[tuple[str, int, float]],
    threshold: int,
    trials: int,
    trial_timeout: float | None,
    window: dict[str, Any],
    backoff: tuple[float, float | None],
) -> None:
    clock = Clock()
    options: dict[str, Any] = {"failure_threshold": threshold, **window}
    config = BreakerSettings(
        open_seconds=1.0,
        half_open_calls=trials,
        half_open_max_wait=trial_timeout,
        open_backoff_multiplier=backoff[0],
        max_open_seconds=backoff[1],
        **options,
    )
    backend = RedisBackend(redis_url, namespace=namespace, redis_clock=clock)
    name = uuid.uuid4().hex
    shared = backend.breaker(name, config, clock=clock, on_transition=lambda t: None)
    assert shared.tracks_duration is (config.slow_call_duration is not None)
    local = LateSuccesses(CircuitBreaker(name, config, clock=clock))
    try:
        admitted_now = False  # a "retry" follows a failed attempt of an admitted call
        for what, elapsed, duration in script:
            clock.ms += elapsed
            if what == "peek":
                assert shared.state is local.state
                same_snapshot(shared, local)
                continue
            if what == "retry" and admitted_now:
                wait = admitted(shared.record_failure_and_acquire, duration)
                expected = admitted(local.record_failure_and_acquire, duration)
                assert wait == pytest.approx(expected, abs=0.0011), (what, local.breaker.state)
                admitted_now = not wait
                continue
            wait = admitted(shared.acquire)
            assert wait == pytest.approx(admitted(local.acquire), abs=0.0011), (
                what,
                local.breaker.state,
            )
            admitted_now = not wait
            if not wait and what != "retry":
                admitted_now = False
                for breaker in (shared, local):
                    if what == "hang":
                        continue  # admitted, and never heard of again
                    if what == "success":
                        breaker.record_success(duration)
                    elif what == "failure":
                        breaker.record_failure(duration)
                    else:
                        breaker.release()
        same_snapshot(shared, local)
    finally:
        backend.close()
