"""Live reload of adaptive concurrency: limiters retuned in place, calls in flight kept."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from coordination import (
    BulkheadFull,
    CircuitOpenError,
    ConfigError,
    CoordinationConfig,
    OperationTimeout,
)
from coordination.error_handling import CoordinationErrorHandler
from coordination.error_handling._adaptive import (
    AdaptiveLimiter,
    Entry,
    LimiterSlot,
    LimitSettings,
)
from coordination.error_handling._limit_algorithms import AIMD, algorithm_for
from fakes import FakeClock

pytestmark = pytest.mark.usefixtures("clean_environment")

LOW, MEDIUM, HIGH, CRITICAL = range(4)


def config_of(**operations: dict[str, Any]) -> CoordinationConfig:
    return CoordinationConfig(jitter="none", base_delay=0, max_retries=0, operations=operations)


def adaptive(**options: Any) -> dict[str, Any]:
    return {"adaptive_concurrency": True, **options}


# --- the limiter retuned in place ----------------------------------------------------------


def test_bounds_shrunk_below_the_calls_in_flight_admit_nobody_until_they_are_under() -> None:
    limiter = AdaptiveLimiter("g", AIMD(1, 10, 8), algorithm_name="aimd", maximum=10)
    entries = [limiter.enter() for _ in range(6)]
    limiter.retune(LimitSettings("aimd", 1, 3, 0.0))
    assert (limiter.limit, limiter.in_flight, limiter.maximum) == (3, 6, 3)
    with pytest.raises(BulkheadFull):
        limiter.enter()
    for entry in entries[:3]:
        limiter.finish(entry, None, release=True)  # samples: AIMD grows, but only to 3
    assert limiter.in_flight == 3
    assert limiter.limit <= 3
    with pytest.raises(BulkheadFull):
        limiter.enter()
    limiter.finish(entries[3], None, release=True)
    limiter.finish(limiter.enter(), None, release=True)  # under the limit: admitted
    for entry in entries[4:]:
        limiter.finish(entry, None, release=True)
    assert limiter.in_flight == 0


def test_a_new_algorithm_starts_from_the_current_limit_clamped() -> None:
    limiter = AdaptiveLimiter("g", AIMD(1, 50, 30), algorithm_name="aimd", maximum=50)
    limiter.retune(LimitSettings("vegas", 1, 50, 0.0))
    assert (limiter.limit, limiter.snapshot().algorithm) == (30, "vegas")
    limiter.retune(LimitSettings("gradient2", 40, 60, 0.0))
    assert (limiter.limit, limiter.minimum, limiter.maximum) == (40, 40, 60)


def test_a_limit_grown_by_a_reload_grants_its_waiters() -> None:
    limiter = AdaptiveLimiter("g", AIMD(1, 1, 1), 5.0, algorithm_name="aimd", maximum=1)
    held = limiter.enter()
    granted: list[Entry] = []
    waiter = threading.Thread(target=lambda: granted.append(limiter.enter()))
    waiter.start()
    deadline = time.monotonic() + 5
    while not limiter.snapshot().waiting and time.monotonic() < deadline:
        time.sleep(0.001)
    limiter.retune(LimitSettings("aimd", 2, 2, 5.0))
    waiter.join(5)
    assert len(granted) == 1
    assert limiter.in_flight == 2
    limiter.finish(granted[0], None, release=True)
    limiter.finish(held, None, release=True)
    assert limiter.in_flight == 0


class LimiterModel(RuleBasedStateMachine):
    """Calls enter and end in any order while the limiter is retuned: the in-flight count
    is the model's, a call is admitted exactly when the limit has room, never beyond."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()  # standing still: a severity once seen stays active
        self.limiter = AdaptiveLimiter(
            "g", AIMD(1, 8, 4), clock=self.clock, algorithm_name="aimd", maximum=8
        )
        self.slot = self.limiter.slot("HIGH")
        self.held: list[Entry] = []

    @rule()
    def enter(self) -> None:
        # the limit, or the severity's share of it while a higher one has asked
        room = len(self.held) < self.limiter.cap(self.slot.rank, self.clock())
        try:
            self.held.append(self.slot.enter())
        except BulkheadFull:
            assert not room
        else:
            assert room

    @precondition(lambda self: self.held)
    @rule(index=st.integers(0, 100), error=st.sampled_from([None, TimeoutError(), ValueError()]))
    def end(self, index: int, error: BaseException | None) -> None:
        self.slot.finish(self.held.pop(index % len(self.held)), error, release=True)

    @rule(
        algorithm=st.sampled_from(["aimd", "vegas", "gradient2"]),
        bounds=st.tuples(st.integers(1, 6), st.integers(0, 6)),
    )
    def retune(self, algorithm: str, bounds: tuple[int, int]) -> None:
        before = self.limiter.limit
        minimum, maximum = bounds[0], bounds[0] + bounds[1]
        self.limiter.retune(LimitSettings(algorithm, minimum, maximum, 0.0))
        assert self.limiter.limit == min(maximum, max(minimum, before))

    @rule(severity=st.sampled_from(["LOW", "MEDIUM", "HIGH", "CRITICAL"]))
    def new_severity(self, severity: str) -> None:
        self.slot.rank = self.limiter.slot(severity).rank

    @invariant()
    def counted(self) -> None:
        assert self.limiter.in_flight == len(self.held)
        assert self.limiter.minimum <= self.limiter.limit <= self.limiter.maximum


TestLimiterModel = LimiterModel.TestCase
TestLimiterModel.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)


# --- reloads of a handler ------------------------------------------------------------------


def test_a_reload_retunes_the_groups_limiter_in_place() -> None:
    clock = FakeClock()
    group = adaptive(concurrency_group="db", concurrency_algorithm="aimd", max_concurrency=10)
    handler = CoordinationErrorHandler(config_of(read=group), clock=clock, sleep=clock.sleep)
    read = handler.decorate(lambda: "ok", operation_name="read")
    for _ in range(5):
        read()  # AIMD, one call at a time: 1 -> 2 -> 3, in use while half of it is
    limiter = handler._limiters._limiters["db"]  # type: ignore[union-attr]
    assert limiter.limit == 3
    handler.reconfigure(
        config_of(read={**group, "concurrency_algorithm": "vegas", "max_concurrency": 2})
    )
    assert handler._limiters._limiters["db"] is limiter  # type: ignore[union-attr]
    snapshot = handler.snapshot().concurrency["db"]
    assert (snapshot.algorithm, snapshot.limit, snapshot.max_concurrency) == ("vegas", 2, 2)
    assert read() == "ok"
    assert handler.snapshot().concurrency["db"].in_flight == 0


def test_a_reload_moves_an_operation_to_another_group_with_its_call_in_flight() -> None:
    started, release = threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        release.wait(5)
        return "slow"

    one = adaptive(concurrency_group="a", max_concurrency=1, min_concurrency=1)
    handler = CoordinationErrorHandler(config_of(read=one))
    read = handler.decorate(slow, operation_name="read")
    results: list[str] = []
    thread = threading.Thread(target=lambda: results.append(read()))
    thread.start()
    started.wait(5)
    handler.reconfigure(config_of(read={**one, "concurrency_group": "b"}))
    release.clear()
    started.clear()
    second = threading.Thread(target=lambda: results.append(read()))
    second.start()  # group b is free: the call in flight holds a's slot
    assert started.wait(5)
    groups = handler.snapshot().concurrency
    assert (groups["a"].in_flight, groups["b"].in_flight) == (1, 1)
    release.set()
    thread.join(5)
    second.join(5)
    groups = handler.snapshot().concurrency
    assert results == ["slow", "slow"]
    assert (groups["a"].in_flight, groups["b"].in_flight) == (0, 0)


def test_a_reload_gives_an_operation_its_new_severity_within_the_group() -> None:
    clock = FakeClock()
    group = adaptive(concurrency_group="db", concurrency_algorithm="aimd", min_concurrency=4)
    config = config_of(
        batch={**group, "error_severity": "LOW"}, pay={**group, "error_severity": "CRITICAL"}
    )
    handler = CoordinationErrorHandler(config, clock=clock, sleep=clock.sleep)
    limiter = (
        handler._adaptive_limiters()
        .slot_for(  # the group, made by its operations
            "batch", handler.plan("batch", {}).options
        )
        .limiter
    )
    handler.plan("pay", {})
    held = [limiter.enter(CRITICAL), limiter.enter(CRITICAL)]  # a CRITICAL call is active
    batch = handler.decorate(lambda: "done", operation_name="batch")
    with pytest.raises(BulkheadFull):
        batch()  # LOW may fill only half of the limit of 4 while CRITICAL calls ask
    handler.reconfigure(
        config_of(
            batch={**group, "error_severity": "CRITICAL"},
            pay={**group, "error_severity": "CRITICAL"},
        )
    )
    assert batch() == "done"
    assert handler.snapshot().operations["batch"].severity == "CRITICAL"
    for entry in held:
        limiter.finish(entry, None, release=True)
    assert limiter.in_flight == 0


def test_a_configuration_that_does_not_check_changes_no_limiter() -> None:
    good = adaptive(concurrency_group="db", concurrency_algorithm="aimd", max_concurrency=10)
    handler = CoordinationErrorHandler(config_of(read=good, write=good))
    handler.decorate(lambda: None, operation_name="read")()
    handler.decorate(lambda: None, operation_name="write")()
    before = dict(handler.snapshot().concurrency)
    slots = {name: op.bulkhead for name, op in handler._live_operations()}
    bad = config_of(
        read={**good, "concurrency_group": "elsewhere", "max_concurrency": 3},
        write={**good, "min_concurrency": 20},  # above its max_concurrency
    )
    with pytest.raises(ConfigError, match="min_concurrency"):
        handler.reconfigure(bad)
    assert dict(handler.snapshot().concurrency) == before  # no group "elsewhere" either
    assert {name: op.bulkhead for name, op in handler._live_operations()} == slots
    assert handler.reload_snapshot().errors == 1


def test_a_group_takes_the_settings_of_its_first_operation_and_warns_of_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    handler = CoordinationErrorHandler(
        config_of(read=adaptive(concurrency_group="db"), write=adaptive(concurrency_group="db"))
    )
    handler.plan("read", {})
    handler.plan("write", {})
    handler.reconfigure(
        config_of(
            read=adaptive(concurrency_group="db", max_concurrency=7),
            write=adaptive(concurrency_group="db", max_concurrency=9),
        )
    )
    assert handler.snapshot().concurrency["db"].max_concurrency == 7
    assert "operation 'write' asks for other settings" in caplog.text


# --- calls in flight across reloads, under threads -----------------------------------------


def _random_settings(rng: random.Random) -> dict[str, Any]:
    algorithm = rng.choice(["aimd", "vegas", "gradient2"])
    minimum = rng.randint(1, 3)
    return {
        "concurrency_group": rng.choice(["a", "b"]),
        "concurrency_algorithm": algorithm,
        "min_concurrency": minimum,
        "max_concurrency": minimum + rng.randint(0, 4),
        "bulkhead_wait": rng.choice([0.0, 0.002]),
        "error_severity": rng.choice(["LOW", "MEDIUM", "HIGH", "CRITICAL"]),
    }


@pytest.mark.parametrize("seed", [1, 2])
def test_no_slot_is_lost_or_granted_twice_across_reloads(seed: int) -> None:
    """Threads call two operations (some attempts outlive their timeout, so the call's
    slot goes with the abandoned attempt and a retry takes another) while reloads move
    them between groups and retune the groups: no count ever goes below zero (a slot given
    back twice) and every count is back at zero once the calls are over (none lost)."""
    rng = random.Random(seed)
    lowest = {"a": 0, "b": 0}
    lock = threading.Lock()

    def config() -> CoordinationConfig:
        ops = {
            name: adaptive(timeout=0.02, max_retries=1, **_random_settings(rng))
            for name in ("read", "write")
        }
        return CoordinationConfig(jitter="none", base_delay=0, operations=ops)

    handler = CoordinationErrorHandler(config())

    def work(seconds: float) -> None:
        time.sleep(seconds)

    calls = [handler.decorate(work, operation_name=name) for name in ("read", "write")]
    stop = threading.Event()
    errors: list[BaseException] = []

    def caller(index: int) -> None:
        local = random.Random(seed * 100 + index)
        while not stop.is_set():
            try:
                calls[local.randrange(2)](local.choice([0.0, 0.001, 0.005, 0.03]))
            except (BulkheadFull, OperationTimeout, CircuitOpenError):
                pass
            except BaseException as exc:  # anything else is a bug
                errors.append(exc)
                return
            with lock:
                for name, group in handler.snapshot().concurrency.items():
                    lowest[name] = min(lowest[name], group.in_flight, group.waiting)

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for _ in range(25):
        time.sleep(0.01)
        handler.reconfigure(config())
    stop.set()
    for thread in threads:
        thread.join(10)
    assert not errors
    deadline = time.monotonic() + 5  # abandoned attempts end within their sleep
    while time.monotonic() < deadline and any(
        g.in_flight or g.waiting for g in handler.snapshot().concurrency.values()
    ):
        time.sleep(0.005)
    for group in handler.snapshot().concurrency.values():
        assert (group.in_flight, group.waiting) == (0, 0), group
    assert lowest == {"a": 0, "b": 0}
    handler.close()


def test_the_slot_a_call_holds_is_the_one_it_was_admitted_by() -> None:
    """A call admitted by group a before a reload moved its operation to b: its abandoned
    attempt's slot, its retry's and its end all go to a."""
    release = threading.Event()
    attempts: list[int] = []

    def stalls() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            release.wait(5)
        return "ok"

    one = adaptive(
        concurrency_group="a", min_concurrency=3, max_concurrency=5, timeout=0.2, max_retries=1
    )
    config = CoordinationConfig(jitter="none", base_delay=0.05, operations={"read": one})
    handler = CoordinationErrorHandler(config)
    read = handler.decorate(stalls, operation_name="read")
    result: list[str] = []
    thread = threading.Thread(target=lambda: result.append(read()))
    thread.start()
    deadline = time.monotonic() + 5
    while not attempts and time.monotonic() < deadline:
        time.sleep(0.001)
    handler.reconfigure(
        CoordinationConfig(
            jitter="none", base_delay=0.05, operations={"read": {**one, "concurrency_group": "b"}}
        )
    )
    thread.join(5)
    assert result == ["ok"]
    groups = handler.snapshot().concurrency
    assert groups["b"].in_flight == 0
    assert groups["a"].in_flight == 1  # the abandoned first attempt still holds a's slot
    release.set()
    deadline = time.monotonic() + 5
    while handler.snapshot().concurrency["a"].in_flight and time.monotonic() < deadline:
        time.sleep(0.001)
    assert handler.snapshot().concurrency["a"].in_flight == 0
    assert isinstance(handler._existing("read").bulkhead, LimiterSlot)
    handler.close()


def test_algorithm_for_the_bounds_it_is_given() -> None:
    assert algorithm_for("aimd", 2, 5, initial=9).limit == 5


async def test_async_calls_in_flight_across_reloads_give_back_what_they_took() -> None:
    """Async calls (their timed-out attempts cancelled, their retries re-admitted) while
    reloads move the operation between groups and retune them: all counts back to zero."""
    rng = random.Random(3)

    def config() -> CoordinationConfig:
        options = adaptive(timeout=0.01, max_retries=1, **_random_settings(rng))
        return CoordinationConfig(jitter="none", base_delay=0, operations={"read": options})

    handler = CoordinationErrorHandler(config())

    async def work(seconds: float) -> None:
        await asyncio.sleep(seconds)

    call = handler.decorate(work, operation_name="read")
    outcomes: list[str] = []

    async def caller(index: int) -> None:
        local = random.Random(index)
        for _ in range(40):
            try:
                await call(local.choice([0.0, 0.001, 0.003, 0.02]))
                outcomes.append("ok")
            except (BulkheadFull, OperationTimeout, CircuitOpenError) as exc:
                outcomes.append(type(exc).__name__)

    async def reloads() -> None:
        for _ in range(20):
            await asyncio.sleep(0.005)
            handler.reconfigure(config())

    await asyncio.gather(*(caller(i) for i in range(8)), reloads())
    assert "ok" in outcomes
    assert len(outcomes) == 8 * 40
    for group in handler.snapshot().concurrency.values():
        assert (group.in_flight, group.waiting) == (0, 0), group
