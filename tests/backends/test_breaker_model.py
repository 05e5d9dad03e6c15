"""The Redis breaker answers like the in-memory one, whatever the sequence of calls,
including calls that never report back (a hung or lost half-open trial)."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coordination import CircuitOpenError
from coordination.backends.redis import RedisBackend
from coordination.error_handling import BreakerSettings, CircuitBreaker

pytestmark = pytest.mark.redis

# (what happens, milliseconds that pass before it). Redis keeps whole milliseconds and the
# in-memory breaker float seconds, so every time is a multiple of 1/8 s: a float holds it
# exactly, and a deadline that lands on "now" is equal in both, not a rounding apart.
steps = st.lists(
    st.tuples(
        st.sampled_from(["success", "failure", "release", "hang", "peek"]),
        st.sampled_from([0, 0, 0, 125, 375, 875, 1000, 2500]),
    ),
    max_size=40,
)


class Clock:
    def __init__(self) -> None:
        self.ms = 1_700_000_000_000

    def __call__(self) -> float:
        return self.ms / 1000


def admitted(breaker: object) -> float:
    """0.0 when admitted, else the rejection's announced wait (always > 0)."""
    wait = 0.0
    try:
        breaker.acquire()  # type: ignore[attr-defined]
    except CircuitOpenError as exc:
        wait = exc.retry_after
        if wait <= 0:
            raise AssertionError(f"a rejection announced retry_after={wait}") from exc
    return wait


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(steps, st.integers(1, 3), st.integers(1, 2), st.sampled_from([None, 0.375, 2.0]))
def test_same_decisions_as_the_in_memory_breaker(
    redis_url: str,
    namespace: str,
    script: list[tuple[str, int]],
    threshold: int,
    trials: int,
    trial_timeout: float | None,
) -> None:
    clock = Clock()
    config = BreakerSettings(
        failure_threshold=threshold,
        open_seconds=1.0,
        half_open_calls=trials,
        half_open_max_wait=trial_timeout,
    )
    backend = RedisBackend(redis_url, namespace=namespace, redis_clock=clock)
    name = uuid.uuid4().hex
    shared = backend.breaker(name, config, clock=clock, on_transition=lambda t: None)
    local = CircuitBreaker(name, config, clock=clock)
    for what, elapsed in script:
        clock.ms += elapsed
        if what == "peek":
            assert shared.state is local.state
            continue
        wait = admitted(shared)
        assert wait == pytest.approx(admitted(local), abs=0.0011), (what, local.state)
        if not wait:
            for breaker in (shared, local):
                if what == "hang":
                    continue  # admitted, and never heard of again
                if what == "success":
                    breaker.record_success(0.0)
                elif what == "failure":
                    breaker.record_failure(0.0)
                else:
                    breaker.release()
        assert shared.snapshot().consecutive_failures == local.snapshot().consecutive_failures
    backend.close()
