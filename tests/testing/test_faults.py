"""The fault injector: schedule, determinism, latency, errors, sync and async, threads."""

from __future__ import annotations

import asyncio
import inspect
import threading

import pytest

from coordination.testing import (
    FaultInjector,
    FaultPhase,
    InjectedError,
    InjectedOutage,
    outage_scenario,
)


class FakeTime:
    """A clock that only moves when slept on."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)


def injector(phases: list[FaultPhase], fake: FakeTime, **kwargs: object) -> FaultInjector:
    return FaultInjector(
        phases,
        clock=fake.clock,
        sleep=fake.sleep,
        async_sleep=fake.async_sleep,
        **kwargs,  # type: ignore[arg-type]
    )


def outcomes(faults: FaultInjector, n: int) -> list[bool]:
    result = []
    for _ in range(n):
        try:
            faults.call()
            result.append(True)
        except InjectedError:
            result.append(False)
    return result


def test_phases_follow_the_clock_and_the_last_one_stays() -> None:
    fake = FakeTime()
    faults = injector(
        [FaultPhase(2, name="a"), FaultPhase(3, outage=True, name="b"), FaultPhase(1, name="c")],
        fake,
    )
    names = []
    for elapsed in (0, 1.99, 2, 4.99, 5, 6, 600):
        fake.now = 100.0 + elapsed
        names.append(faults.current_phase().name)
    assert names == ["a", "a", "b", "b", "c", "c", "c"]
    assert faults.total_duration == 6


def test_repeat_cycles_through_the_phases() -> None:
    fake = FakeTime()
    faults = injector([FaultPhase(1, name="up"), FaultPhase(1, name="down")], fake, repeat=True)
    assert [faults.phase_at(t).name for t in (0.5, 1.5, 2.5, 3.5)] == ["up", "down", "up", "down"]


def test_restart_goes_back_to_the_first_phase() -> None:
    fake = FakeTime()
    faults = injector([FaultPhase(1, name="first"), FaultPhase(1, name="second")], fake)
    fake.now += 1.5
    assert faults.current_phase().name == "second"
    faults.restart()
    assert faults.current_phase().name == "first"
    assert faults.elapsed() == 0


def test_outage_fails_every_call_and_healthy_none() -> None:
    fake = FakeTime()
    faults = injector([FaultPhase(10, name="fine"), FaultPhase(10, outage=True)], fake)
    assert all(outcomes(faults, 50))
    fake.now += 10
    with pytest.raises(InjectedOutage, match="unavailable") as caught:
        faults.call()
    assert caught.value.phase == "outage"
    assert not any(outcomes(faults, 50))
    stats = faults.stats
    assert stats.calls == 101
    assert stats.errors == stats.outage_errors == 51
    assert stats.calls_by_phase == {"fine": 50, "outage": 51}
    assert stats.errors_by_phase == {"outage": 51}


def test_error_rate_is_respected_and_deterministic_with_a_seed() -> None:
    phases = [FaultPhase(100, error_rate=0.3)]
    first = outcomes(injector(phases, FakeTime(), seed=7), 2000)
    second = outcomes(injector(phases, FakeTime(), seed=7), 2000)
    other = outcomes(injector(phases, FakeTime(), seed=8), 2000)
    assert first == second
    assert first != other
    failure_rate = first.count(False) / len(first)
    assert 0.25 < failure_rate < 0.35


def test_injected_errors_are_transient_connection_errors() -> None:
    faults = injector([FaultPhase(1, error_rate=1.0, name="flaky")], FakeTime())
    with pytest.raises(ConnectionError, match=r"injected failure \(flaky\)"):
        faults.call()
    assert not isinstance(InjectedError("x", phase="p"), InjectedOutage)


def test_latency_and_jitter_are_slept_through_the_injected_sleep() -> None:
    fake = FakeTime()
    faults = injector([FaultPhase(1000, latency=0.01, latency_jitter=0.02)], fake, seed=3)
    for _ in range(200):
        faults.call()
    assert len(fake.slept) == 200
    assert all(0.01 <= s <= 0.03 for s in fake.slept)
    assert max(fake.slept) - min(fake.slept) > 0.01  # the jitter really varies
    assert faults.stats.added_latency_seconds == pytest.approx(sum(fake.slept))


def test_no_latency_means_no_sleep_at_all() -> None:
    fake = FakeTime()
    faults = injector([FaultPhase(1)], fake)
    faults.call()
    assert fake.slept == []


def test_call_runs_the_wrapped_function_or_returns_the_result() -> None:
    faults = injector([FaultPhase(1)], FakeTime(), result={"stock": 3})
    assert faults.call() == {"stock": 3}
    assert faults.call(lambda a, *, b: a + b, 2, b=5) == 7


def test_wrap_keeps_the_signature_and_counts_calls() -> None:
    faults = injector([FaultPhase(1)], FakeTime())

    @faults.wrap
    def reserve(item: str, quantity: int = 1) -> str:
        """Reserve stock."""
        return f"{quantity}x{item}"

    assert reserve("apple", quantity=2) == "2xapple"
    assert reserve.__name__ == "reserve"
    assert reserve.__doc__ == "Reserve stock."
    assert list(inspect.signature(reserve).parameters) == ["item", "quantity"]
    assert faults.stats.calls == 1


async def test_async_wrap_and_acall_use_the_async_sleep() -> None:
    fake = FakeTime()
    faults = injector(
        [FaultPhase(1, latency=0.5, name="slow"), FaultPhase(1, outage=True)], fake, result="ok"
    )

    @faults.wrap
    async def fetch(key: str) -> str:
        await asyncio.sleep(0)
        return key.upper()

    assert inspect.iscoroutinefunction(fetch)
    assert await fetch("k") == "K"
    assert fake.slept == [0.5]
    assert fake.now == 100.5
    assert await faults.acall() == "ok"  # now 101.0: the outage has begun after this sleep
    with pytest.raises(InjectedOutage):
        await faults.acall()


def test_counts_are_exact_under_threads() -> None:
    faults = FaultInjector([FaultPhase(1000, error_rate=0.5)], seed=1)
    failures = []

    def worker() -> None:
        failures.append(outcomes(faults, 500).count(False))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = faults.stats
    assert stats.calls == 4000
    assert stats.errors == sum(failures)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"duration": 0}, "duration must be greater than 0"),
        ({"duration": -1}, "duration must be finite and at least 0"),
        ({"duration": 1, "error_rate": 1.5}, "error_rate must be between 0 and 1"),
        ({"duration": 1, "latency": float("nan")}, "latency must be finite"),
        ({"duration": "5"}, "duration must be a number, not str"),
    ],
)
def test_bad_phases_are_rejected_with_the_field_named(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        FaultPhase(**kwargs)  # type: ignore[arg-type]


def test_bad_schedules_are_rejected() -> None:
    with pytest.raises(ValueError, match="at least one FaultPhase"):
        FaultInjector([])
    with pytest.raises(TypeError, match=r"phases\[1\] must be a FaultPhase, not dict"):
        FaultInjector([FaultPhase(1), {"duration": 1}])  # type: ignore[list-item]


def test_outage_scenario_tells_the_whole_story() -> None:
    phases = outage_scenario(20)
    assert [p.name for p in phases] == ["healthy", "degraded", "outage", "recovered"]
    assert sum(p.duration for p in phases) == pytest.approx(20)
    assert phases[2].outage
    assert phases[2].failure_rate == 1.0
    assert phases[1].error_rate > phases[0].error_rate
    with pytest.raises(ValueError, match="total_seconds"):
        outage_scenario(0)


def test_repr_names_the_phases() -> None:
    faults = FaultInjector([FaultPhase(2, name="up"), FaultPhase(1, outage=True)], repeat=True)
    assert repr(faults) == "<FaultInjector [up 2s, outage 1s] repeating>"
